package server_test

import (
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
)

// TestStatusHandlerServesStatusOnly: the handler for the plain-HTTP
// listener answers /crl and /ocsp like the API does, and nothing else: the
// API and the bundle are 404 there, whatever the method.
func TestStatusHandlerServesStatusOnly(t *testing.T) {
	e := newEnv(t)
	leaf := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	plain := httptest.NewServer(e.srv.StatusHandler())
	defer plain.Close()
	send := func(method, path, ct string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, plain.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := plain.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, data
	}

	resp, der := send(http.MethodGet, "/crl", "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	if err := crl.CheckSignatureFrom(e.authz.Issuer().Certificate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}

	req, err := ocsp.CreateRequest(leaf, e.authz.Issuer().Certificate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := send(http.MethodPost, "/ocsp", "application/ocsp-request", req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ocsp: %d %s", resp.StatusCode, resp.Header.Get("Certgate-Error"))
	}
	r, err := ocsp.ParseResponseForCert(body, leaf, e.authz.Issuer().Certificate())
	if err != nil || r.Status != ocsp.Good {
		t.Fatalf("OCSP over plain HTTP: %v status %d", err, r.Status)
	}

	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/certificates"}, {http.MethodGet, "/v1/bundle"}, {http.MethodPost, "/v1/enroll"},
		{http.MethodGet, "/healthz"}, {http.MethodGet, "/"}, {http.MethodGet, "/crl/x/y"}, {http.MethodGet, "/v1/ca"},
	} {
		resp, body := send(tc.method, tc.path, "application/json", []byte("{}"))
		want := `{"error":{"code":"not_found","message":"no such endpoint on the status listener (CRL and OCSP only)"}}`
		if resp.StatusCode != http.StatusNotFound || string(bytes.TrimSpace(body)) != want {
			t.Errorf("%s %s: %d %s, want 404 %s", tc.method, tc.path, resp.StatusCode, body, want)
		}
	}

	// The intermediate's own CRL and certificate, where its leaves point.
	inter := e.authz.Issuer().Certificate()
	resp, body = send(http.MethodGet, "/crl/"+ca.KeyID(inter), "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /crl/KEYID: %d %s", resp.StatusCode, body)
	}
	if crl, err := x509.ParseRevocationList(body); err != nil || crl.CheckSignatureFrom(inter) != nil {
		t.Fatalf("CRL of the intermediate: %v", err)
	}
	resp, body = send(http.MethodGet, "/ca/"+ca.KeyID(inter)+".crt", "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, inter.Raw) || resp.Header.Get("Content-Type") != "application/pkix-cert" {
		t.Fatalf("GET /ca/KEYID.crt: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for path, want := range map[string]string{
		"/crl/ABCD":             `{"error":{"code":"not_found","message":"no such CRL (want /crl/KEYID, KEYID in lowercase hex)"}}`,
		"/crl/abcd":             `{"error":{"code":"not_found","message":"no CRL for CA key abcd: not a key of this CA, or one that publishes none (retired, revoked, or not signing yet)"}}`,
		"/ca/abcd":              `{"error":{"code":"not_found","message":"no such CA certificate (want /ca/KEYID.crt, KEYID in lowercase hex)"}}`,
		"/ca/abcd.crt":          `{"error":{"code":"not_found","message":"no CA certificate with key ID abcd"}}`,
		"/ca/..%2fcertgate.crt": `{"error":{"code":"not_found","message":"no such CA certificate (want /ca/KEYID.crt, KEYID in lowercase hex)"}}`,
	} {
		resp, body := send(http.MethodGet, path, "", nil)
		if resp.StatusCode != http.StatusNotFound || string(bytes.TrimSpace(body)) != want {
			t.Errorf("GET %s: %d %s, want 404 %s", path, resp.StatusCode, body, want)
		}
	}
}

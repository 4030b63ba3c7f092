package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// statusFiles writes the PEM files a third-party verifier holds: the root
// alone, the intermediate alone, root+intermediate, and the leaf.
type statusFiles struct{ root, inter, both, leaf string }

func (e *env) statusFiles(leaf *x509.Certificate) statusFiles {
	e.t.Helper()
	dir := e.t.TempDir()
	inter := e.authz.Issuer().Certificate()
	f := statusFiles{
		root: filepath.Join(dir, "root.pem"), inter: filepath.Join(dir, "inter.pem"),
		both: filepath.Join(dir, "both.pem"), leaf: filepath.Join(dir, "leaf.pem"),
	}
	for path, certs := range map[string][]*x509.Certificate{
		f.root: {e.root}, f.inter: {inter}, f.both: {e.root, inter}, f.leaf: {leaf},
	} {
		if err := os.WriteFile(path, pemutil.EncodeCertificates(certs...), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return f
}

// get fetches path over TLS trusting the root.
func (e *env) get(path string, hdr http.Header) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(http.MethodGet, path, "", nil, hdr)
}

func (e *env) do(method, path, contentType string, body []byte, hdr http.Header) (*http.Response, []byte) {
	e.t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

func (e *env) revokeSerial(serial, reason string) {
	e.t.Helper()
	if _, err := e.client(&e.admin).Revoke(context.Background(), wire.RevokeRequest{Serial: serial, Reason: reason}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) auditCount() int {
	e.t.Helper()
	recs, err := e.store.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(recs)
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestLeavesNameTheirStatusEndpoints(t *testing.T) {
	e := newEnv(t)
	leaf := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	if got := leaf.CRLDistributionPoints; len(got) != 1 || got[0] != e.url+"/crl" {
		t.Errorf("CRL distribution points %v, want %s/crl", got, e.url)
	}
	if got := leaf.OCSPServer; len(got) != 1 || got[0] != e.url+"/ocsp" {
		t.Errorf("OCSP servers %v, want %s/ocsp", got, e.url)
	}
}

func TestCRLVerifiedByOpenSSL(t *testing.T) {
	openssl := needTool(t, "openssl")
	e := newEnv(t)
	revoked := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	live := e.clientCert("/svc/ledger", ca.ClientProfile).Leaf
	e.revokeSerial(ca.SerialHex(revoked.SerialNumber), "keyCompromise")

	resp, der := e.get("/crl", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /crl: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300, no-transform, must-revalidate" {
		t.Errorf("Cache-Control %q", cc)
	}
	files := e.statusFiles(revoked)
	crlFile := filepath.Join(t.TempDir(), "crl.der")
	if err := os.WriteFile(crlFile, der, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", files.both, "-verify", "-noout", "-text")
	t.Logf("openssl crl:\n%s", out)
	serialLine := "Serial Number: " + fmt.Sprintf("%X", revoked.SerialNumber.Bytes())
	for _, want := range []string{"verify OK", serialLine, "X509v3 CRL Reason Code: \n                Key Compromise", "X509v3 CRL Number:"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl crl output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, fmt.Sprintf("%X", live.SerialNumber.Bytes())) {
		t.Errorf("the live certificate is listed:\n%s", out)
	}
	// Signed by the intermediate: verifying against the root alone fails.
	bad, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", files.root, "-verify", "-noout").CombinedOutput()
	if err == nil || strings.Contains(string(bad), "verify OK") {
		t.Errorf("CRL verified without its issuer:\n%s", bad)
	}
	// A conditional GET of the same CRL is a 304.
	again, _ := e.get("/crl", http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", again.StatusCode)
	}
}

// ocspTool runs the real openssl ocsp client against the server over
// HTTPS: it builds the request (with a nonce, its default), sends it, and
// verifies the response and the nonce, trusting the root only.
func ocspTool(t *testing.T, e *env, files statusFiles, target ...string) (string, error) {
	t.Helper()
	args := append([]string{"ocsp", "-issuer", files.inter}, target...)
	args = append(args, "-url", e.url+"/ocsp", "-CAfile", files.root, "-verify_other", files.inter, "-resp_text")
	out, err := exec.Command(needTool(t, "openssl"), args...).CombinedOutput()
	return string(out), err
}

func TestOCSPWithOpenSSL(t *testing.T) {
	needTool(t, "openssl")
	e := newEnv(t)
	leaf := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	files := e.statusFiles(leaf)

	out, err := ocspTool(t, e, files, "-cert", files.leaf)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Response verify OK", files.leaf + ": good", "OCSP Nonce:"} {
		if !strings.Contains(out, want) {
			t.Errorf("good: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("openssl warned:\n%s", out)
	}

	e.revokeSerial(ca.SerialHex(leaf.SerialNumber), "keyCompromise")
	out, err = ocspTool(t, e, files, "-cert", files.leaf)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("openssl ocsp, revoked:\n%s", out)
	for _, want := range []string{"Response verify OK", files.leaf + ": revoked", "Reason: keyCompromise", "Revocation Time:"} {
		if !strings.Contains(out, want) {
			t.Errorf("revoked: output lacks %q:\n%s", want, out)
		}
	}

	out, err = ocspTool(t, e, files, "-serial", "0x5EED5EED")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Response verify OK", "0x5EED5EED: unknown"} {
		if !strings.Contains(out, want) {
			t.Errorf("unknown: output lacks %q:\n%s", want, out)
		}
	}

	// Without a nonce the cached response verifies too.
	out, err = ocspTool(t, e, files, "-cert", files.leaf, "-no_nonce")
	if err != nil || !strings.Contains(out, "Response verify OK") || !strings.Contains(out, ": revoked") {
		t.Fatalf("no nonce: %v\n%s", err, out)
	}
}

func TestOCSPOtherCAIsUnauthorized(t *testing.T) {
	needTool(t, "openssl")
	e := newEnv(t)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	other, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "other.org", Key: key, Now: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	files := e.statusFiles(other)
	os.WriteFile(files.inter, pemutil.EncodeCertificates(other), 0o644)
	before, certs := e.auditCount(), e.certCount()
	out, _ := ocspTool(t, e, files, "-serial", "0x1234")
	if !strings.Contains(out, "Responder Error: unauthorized (6)") {
		t.Fatalf("output lacks the unauthorized error:\n%s", out)
	}
	if e.auditCount() != before || e.certCount() != certs {
		t.Fatal("an unauthorized request changed the store")
	}
}

func TestOCSPGetWithCurl(t *testing.T) {
	curl := needTool(t, "curl")
	e := newEnv(t)
	leaf := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	inter := e.authz.Issuer().Certificate()
	files := e.statusFiles(leaf)
	req, err := ocsp.CreateRequest(leaf, inter, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fetch := func(path string) (http.Header, *ocsp.Response) {
		t.Helper()
		body, hdrs := filepath.Join(dir, "resp.der"), filepath.Join(dir, "headers")
		runTool(t, curl, "-sS", "--fail", "--cacert", files.root, "-D", hdrs, "-o", body, e.url+path)
		raw, _ := os.ReadFile(hdrs)
		h := http.Header{}
		for _, line := range strings.Split(string(raw), "\r\n")[1:] {
			if k, v, ok := strings.Cut(line, ": "); ok {
				h.Add(k, v)
			}
		}
		der, _ := os.ReadFile(body)
		r, err := ocsp.ParseResponseForCert(der, leaf, inter)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return h, r
	}
	path := "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(req))
	h, r := fetch(path)
	if r.Status != ocsp.Good || h.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("status %d content type %q", r.Status, h.Get("Content-Type"))
	}
	if cc := h.Get("Cache-Control"); cc != "public, max-age=300, no-transform, must-revalidate" {
		t.Errorf("Cache-Control %q", cc)
	}
	if h.Get("ETag") == "" || h.Get("Last-Modified") != r.ThisUpdate.Format(http.TimeFormat) || h.Get("Expires") == "" {
		t.Errorf("caching headers %v", h)
	}
	e.revokeSerial(ca.SerialHex(leaf.SerialNumber), "superseded")
	if _, r := fetch(path); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Fatalf("after revocation: status %d reason %d", r.Status, r.RevocationReason)
	}

	// A request whose base64 has "/" and "+", sent escaped and unescaped.
	// The issuer's hashes come first in the request and are fixed by this
	// test's CA: when their base64 holds "//" no serial helps (about one
	// CA in a hundred; the search used to loop for ever then), so the
	// other hash algorithms are tried too.
	var der []byte
	var serial int64
search:
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for n := int64(1); n <= 4096; n++ {
			d, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(n)}, inter, &ocsp.RequestOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			b64 := base64.StdEncoding.EncodeToString(d)
			if strings.Contains(b64, "/") && strings.Contains(b64, "+") && !strings.Contains(b64, "//") {
				der, serial = d, n
				break search
			}
		}
	}
	if der == nil {
		t.Fatal("no OCSP request of this CA encodes with / and + and without //")
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	for _, p := range []string{url.PathEscape(b64), b64, strings.TrimRight(b64, "=")} {
		resp, body := e.get("/ocsp/"+p, nil)
		r, err := ocsp.ParseResponse(body, inter)
		if resp.StatusCode != http.StatusOK || err != nil || r.Status != ocsp.Unknown || r.SerialNumber.Int64() != serial {
			t.Fatalf("GET /ocsp/%s: %d %v %+v", p, resp.StatusCode, err, r)
		}
	}
}

// oneOCSPRequest is a valid request about a live certificate.
func (e *env) oneOCSPRequest() []byte {
	e.t.Helper()
	leaf := e.clientCert("/svc/billing", ca.ClientProfile).Leaf
	req, err := ocsp.CreateRequest(leaf, e.authz.Issuer().Certificate(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

func TestOCSPBadInput(t *testing.T) {
	e := newEnv(t)
	valid := e.oneOCSPRequest()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	other, _ := ca.CreateRoot(ca.RootOptions{TrustDomain: "other.org", Key: key, Now: e.clock.Now()})
	foreign, _ := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(1)}, other, nil)
	const malformed = "certstatus: malformed OCSP request: "
	type result struct {
		status int
		body   []byte
		reason string // the Certgate-Error header, a regexp
	}
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		want        result
	}{
		{"garbage body", "POST", "/ocsp", "application/ocsp-request", []byte("hello, responder"),
			result{200, ocsp.MalformedRequestErrorResponse, malformed + "not a DER-encoded OCSPRequest"}},
		{"truncated DER", "POST", "/ocsp", "application/ocsp-request", valid[:len(valid)-5],
			result{200, ocsp.MalformedRequestErrorResponse, malformed + "not a DER-encoded OCSPRequest"}},
		{"empty body", "POST", "/ocsp", "application/ocsp-request", nil,
			result{200, ocsp.MalformedRequestErrorResponse, malformed + "empty request"}},
		{"oversized body", "POST", "/ocsp", "application/ocsp-request", append(bytes.Clone(valid), make([]byte, server.MaxOCSPRequest)...),
			result{413, ocsp.MalformedRequestErrorResponse, "OCSP request is larger than 4096 bytes"}},
		{"wrong content type", "POST", "/ocsp", "application/json", valid,
			result{415, ocsp.MalformedRequestErrorResponse, `content type "application/json" is not application/ocsp-request`}},
		{"no content type", "POST", "/ocsp", "", valid,
			result{415, ocsp.MalformedRequestErrorResponse, `content type "" is not application/ocsp-request`}},
		{"unknown issuer hash", "POST", "/ocsp", "application/ocsp-request", foreign,
			result{200, ocsp.UnauthorizedErrorResponse, "certstatus: not authorized for this issuer: issuer name hash [0-9a-f]{40} and key hash [0-9a-f]{40} \\(SHA-1\\) name no intermediate of this CA that answers for its certificates"}},
		{"bad base64", "GET", "/ocsp/not*base64", "", nil,
			result{200, ocsp.MalformedRequestErrorResponse, "OCSP request in the URL is not base64: illegal base64 data at input byte 3"}},
		{"base64 of garbage", "GET", "/ocsp/" + base64.StdEncoding.EncodeToString([]byte{0x30, 0x01}), "", nil,
			result{200, ocsp.MalformedRequestErrorResponse, malformed + "not a DER-encoded OCSPRequest"}},
		{"empty GET", "GET", "/ocsp/", "", nil,
			result{200, ocsp.MalformedRequestErrorResponse, malformed + "empty request"}},
		{"GET too long", "GET", "/ocsp/" + strings.Repeat("A", 6000), "", nil,
			result{414, ocsp.MalformedRequestErrorResponse, "OCSP request is longer than 4096 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, certs := e.auditCount(), e.certCount()
			crlBefore, _ := e.get("/crl", nil)
			resp, body := e.do(tc.method, tc.path, tc.contentType, tc.body, nil)
			if resp.StatusCode != tc.want.status || !bytes.Equal(body, tc.want.body) {
				t.Fatalf("%d %x, want %d %x", resp.StatusCode, body, tc.want.status, tc.want.body)
			}
			if reason := resp.Header.Get(server.ErrorHeader); !regexp.MustCompile("^" + tc.want.reason + "$").MatchString(reason) {
				t.Errorf("reason %q, want %q", reason, tc.want.reason)
			}
			if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/ocsp-response" || cc != "no-store" {
				t.Errorf("Content-Type %q Cache-Control %q", ct, cc)
			}
			// The body is what an OCSP client reads: the error status.
			if _, err := ocsp.ParseResponse(body, nil); err == nil {
				t.Error("error body parses as a successful response")
			}
			crlAfter, _ := e.get("/crl", nil)
			if e.auditCount() != before || e.certCount() != certs || crlAfter.Header.Get("ETag") != crlBefore.Header.Get("ETag") {
				t.Fatal("a refused request changed something")
			}
		})
	}
}

// unavailableStore fails certificate lookups as a store that is down.
type unavailableStore struct{ store.Store }

func (unavailableStore) GetCertificate(context.Context, string) (store.Certificate, error) {
	return store.Certificate{}, fmt.Errorf("store: certificate: %w", store.ErrUnavailable)
}

func TestOCSPStoreDownIsTryLater(t *testing.T) {
	e := newEnv(t)
	srv, err := server.New(server.Options{Authority: e.authz, Store: unavailableStore{e.store}, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/ocsp", bytes.NewReader(e.oneOCSPRequest()))
	req.Header.Set("Content-Type", "application/ocsp-request")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !bytes.Equal(rec.Body.Bytes(), ocsp.TryLaterErrorResponse) || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("%d %x %v", rec.Code, rec.Body.Bytes(), rec.Header())
	}
	if got := rec.Header().Get(server.ErrorHeader); got != "the store is unavailable; try again" {
		t.Fatalf("reason %q", got)
	}
}

package staple_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/staple"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
)

// responder is a fake OCSP responder signing with the test CA's
// intermediate; status says what it answers.
type responder struct {
	ca     *testca.CA
	status atomic.Int32
	asked  atomic.Int32
	now    func() time.Time
}

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.asked.Add(1)
	body, _ := io.ReadAll(req.Body)
	oreq, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	now := r.now()
	der, err := ocsp.CreateResponse(r.ca.Intermediate, r.ca.Intermediate, ocsp.Response{
		Status: int(r.status.Load()), SerialNumber: oreq.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour), RevokedAt: now.Add(-time.Hour),
	}, r.ca.IntermediateKey)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// leafWithOCSP issues a server certificate naming url as its OCSP
// responder, with the intermediate after it.
func leafWithOCSP(t *testing.T, ca *testca.CA, url string) *tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "gw"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, OCSPServer: []string{url},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Intermediate, key.Public(), ca.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, ca.Intermediate.Raw}, PrivateKey: crypto.Signer(key), Leaf: leaf}
}

func TestStapler(t *testing.T) {
	ca := testca.New(t, "example.org")
	now := time.Now()
	clock := func() time.Time { return now }
	r := &responder{ca: ca, now: clock}
	srv := httptest.NewServer(r)
	defer srv.Close()
	cert := leafWithOCSP(t, ca, srv.URL)
	s := staple.New(staple.HTTPFetcher(srv.Client()), clock, nil)

	// The first handshake goes without; the response arrives in the
	// background and the next ones carry it.
	if c := s.Staple(cert); c.OCSPStaple != nil {
		t.Fatal("stapled before any fetch")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Staple(cert).OCSPStaple == nil {
		if time.Now().After(deadline) {
			t.Fatal("no staple")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := ocsp.ParseResponseForCert(s.Staple(cert).OCSPStaple, cert.Leaf, ca.Intermediate)
	if err != nil || resp.Status != ocsp.Good {
		t.Fatalf("staple %v %v", resp, err)
	}
	if cert.OCSPStaple != nil {
		t.Fatal("the caller's certificate was changed")
	}
	asked := r.asked.Load()
	for range 50 {
		s.Staple(cert)
	}
	time.Sleep(50 * time.Millisecond)
	if r.asked.Load() != asked {
		t.Fatal("a fresh response was fetched again")
	}

	// Past half its validity it is renewed; a responder that now says
	// revoked leaves the last good response in use until it expires, and
	// then there is no staple.
	r.status.Store(ocsp.Revoked)
	now = now.Add(40 * time.Minute)
	s.Staple(cert)
	deadline = time.Now().Add(5 * time.Second)
	for r.asked.Load() == asked {
		if time.Now().After(deadline) {
			t.Fatal("not renewed at half life")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Refresh(cert); err == nil || err.Error() != "staple: the responder says the certificate is not good (status 1)" {
		t.Fatalf("Refresh = %v", err)
	}
	if s.Staple(cert).OCSPStaple == nil {
		t.Fatal("the last good response was dropped before it expired")
	}
	now = now.Add(time.Hour)
	if s.Staple(cert).OCSPStaple != nil {
		t.Fatal("an expired response was stapled")
	}
}

func TestStaplerResponderDown(t *testing.T) {
	ca := testca.New(t, "example.org")
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	cert := leafWithOCSP(t, ca, srv.URL)
	s := staple.New(staple.HTTPFetcher(&http.Client{Timeout: time.Second}), time.Now, nil)
	if err := s.Refresh(cert); err == nil {
		t.Fatal("no error from a responder that is down")
	}
	if s.Staple(cert).OCSPStaple != nil {
		t.Fatal("stapled without a response")
	}
	if err := s.Refresh(&tls.Certificate{Certificate: [][]byte{cert.Certificate[0]}, Leaf: cert.Leaf}); err == nil || err.Error() != "staple: the certificate has no issuer in its chain" {
		t.Fatalf("no issuer: %v", err)
	}
}

// TestServerStaplesItsCertificate: the certgate server staples its own
// responder's answer about its serving certificate.
func TestServerStaplesItsCertificate(t *testing.T) {
	e := testenv.Start(t)
	pool := e.Roots
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", e.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		cs := c.ConnectionState()
		c.Close()
		if len(cs.OCSPResponse) > 0 {
			resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], cs.PeerCertificates[1])
			if err != nil || resp.Status != ocsp.Good {
				t.Fatalf("stapled response %+v %v", resp, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the server staples no OCSP response")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

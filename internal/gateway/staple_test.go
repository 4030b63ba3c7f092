package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/testca"
)

// TestGatewayStaplesItsCertificate: with a certificate that names an OCSP
// responder (the CA's status URL), the gateway staples the responder's
// good answer to its handshakes.
func TestGatewayStaplesItsCertificate(t *testing.T) {
	e := newEnv(t)
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		der, _ := ocsp.CreateResponse(e.ca.Intermediate, e.ca.Intermediate, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		}, e.ca.IntermediateKey)
		w.Write(der)
	}))
	defer responder.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := urlParse("spiffe://example.org/gateway/gw1")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "gw1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, URIs: u,
		OCSPServer: []string{responder.URL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.ca.Intermediate, key.Public(), e.ca.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	gw := &testca.Leaf{Cert: leaf, Chain: []*x509.Certificate{leaf, e.ca.Intermediate}, Key: key}
	os.Remove(filepath.Join(e.dir, "gateway.pem"))
	gw.WriteFiles(t, e.dir, "gateway")
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := tls.Dial("tcp", e.addr(), &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		cs := c.ConnectionState()
		c.Close()
		if len(cs.OCSPResponse) > 0 {
			resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], e.ca.Intermediate)
			if err != nil || resp.Status != ocsp.Good || !cs.PeerCertificates[0].Equal(leaf) {
				t.Fatalf("stapled %+v %v", resp, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no OCSP staple")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package tlsscan

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// scanTarget is a TLS listener the scan test looks at.
type scanTarget struct {
	name string
	addr string // 127.0.0.1:port
}

// scanSetup runs a server whose certificates name its OCSP and CRL URLs
// (as `certgate init` makes them) and a gateway following its feed with a
// certificate of the gateway profile from the same CA, and waits until
// both staple an OCSP response to their handshakes.
func scanSetup(t *testing.T) (server, gw scanTarget, bundle string) {
	t.Helper()
	e := testenv.Start(t, testenv.WithStatusURLs())
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	e.WriteClientFiles(t, dir, e.IssueDirect(t, identity.GatewayPrefix+"scan", ca.GatewayProfile))
	g := gatewaytest.MustStart(t, gatewaytest.Options{Dir: dir, Config: gatewaytest.Config{
		Bundle: "bundle.pem", Cert: "cert.pem", Key: "key.pem",
		ServerURLs: []string{e.URL}, MaxStaleness: "10m", MaxBackoff: "300ms",
		Routes: []gatewaytest.Route{{Name: "api", PathPrefix: "/", Upstream: up.URL, Allow: []string{"spiffe://example.org/svc/*"}}},
	}})
	bundle = filepath.Join(dir, "bundle.pem")
	server, gw = scanTarget{"server", e.Addr}, scanTarget{"gateway", g.Addr}
	for _, tg := range []scanTarget{server, gw} {
		waitStaple(t, tg, e.Roots, e.Intermediate)
	}
	return server, gw, bundle
}

// waitStaple waits until a handshake with tg carries a good OCSP response
// for its certificate, signed for the intermediate. The stapler fetches
// in the background after the first handshake, so the first ones go
// without.
func waitStaple(t *testing.T, tg scanTarget, roots *x509.CertPool, issuer *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, err := handshakeState(tg.addr, roots)
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		if len(cs.OCSPResponse) > 0 {
			r, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], issuer)
			if err != nil || r.Status != ocsp.Good {
				t.Fatalf("%s staples %+v: %v", tg.name, r, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no OCSP response stapled after 30 s", tg.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOCSPStaplingSeenByOpenSSL: the server and the gateway staple a good
// OCSP response for their own certificates, as openssl shows it: s_client
// -status prints the response (the chain verified against the bundle), and
// openssl ocsp -respin verifies the staple against the bundle and finds
// the certificate's status by the CertID OpenSSL builds for it (SHA-1, as
// testssl.sh and other OpenSSL-based clients look it up).
func TestOCSPStaplingSeenByOpenSSL(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
	server, gw, bundle := scanSetup(t)
	for _, tg := range []scanTarget{server, gw} {
		t.Run(tg.name, func(t *testing.T) {
			// openssl s_client -status: the stapled response, with the
			// chain verified against the bundle.
			out, err := exec.Command(openssl, "s_client", "-connect", tg.addr, "-status", "-CAfile", bundle, "-verify_return_error").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OCSP Response Status: successful (0x0)") || !strings.Contains(string(out), "Cert Status: good") ||
				!strings.Contains(string(out), "Verify return code: 0 (ok)") {
				t.Errorf("openssl s_client -status: %v\n%s", err, out)
			}
			// openssl ocsp: the staple verifies against the bundle and
			// holds a status for the certificate, looked up by the
			// CertID OpenSSL builds (what testssl.sh does).
			roots := x509.NewCertPool()
			b, _ := os.ReadFile(bundle)
			roots.AppendCertsFromPEM(b)
			cs, err := handshakeState(tg.addr, roots)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writePEM := func(name string, certs ...*x509.Certificate) string {
				var b []byte
				for _, c := range certs {
					b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
				}
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			staple := filepath.Join(dir, "staple.der")
			os.WriteFile(staple, cs.OCSPResponse, 0o600)
			leaf := writePEM("leaf.pem", cs.PeerCertificates[0])
			out, err = exec.Command(openssl, "ocsp", "-no_nonce", "-respin", staple, "-issuer", writePEM("issuer.pem", cs.PeerCertificates[1]),
				"-CAfile", bundle, "-cert", leaf).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), leaf+": good") {
				t.Errorf("openssl ocsp -respin: %v\n%s", err, out)
			}

		})
	}
}

// handshakeState is the state of one handshake with addr, as a client
// without a certificate that trusts roots and asks for the certificate's
// status sees it.
func handshakeState(addr string, roots *x509.CertPool) (tls.ConnectionState, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

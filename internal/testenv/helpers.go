package testenv

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// IssueDirect issues a certificate for path (e.g. "/svc/billing") with
// profile p directly from the CA service, no token, with a new ECDSA P-256
// key. The chain holds the leaf and the intermediate. A profile that
// allows host names also names 127.0.0.1 and localhost, so the certificate
// can serve TLS here.
func (e *Env) IssueDirect(t testing.TB, path string, p ca.Profile) tls.Certificate {
	t.Helper()
	c, err := e.issue(path, p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *Env) issue(path string, p ca.Profile) (tls.Certificate, error) {
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testenv: %w", err)
	}
	id, err := identity.New(e.TrustDomain, path)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testenv: %w", err)
	}
	req := ca.Request{PublicKey: key.Public(), Identity: id}
	if p.AllowHostnames {
		req.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		req.DNSNames = []string{"localhost"}
	}
	iss, err := e.Authority.IssueDirect(context.Background(), req, p, store.ObtainedInit, "test")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testenv: %w", err)
	}
	chain := [][]byte{iss.Cert.Raw}
	for _, c := range iss.Chain {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: iss.Cert}, nil
}

// Token mints an enrollment token for the SPIFFE ID id, created by the
// admin; a zero ttl is the service's default.
func (e *Env) Token(t testing.TB, id string, ttl time.Duration) string {
	t.Helper()
	parsed, err := identity.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.Authority.CreateToken(context.Background(), e.AdminID.String(), parsed, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

// Client returns an API client of the server that trusts Roots and
// presents cert (nil: no client certificate), with a 10 s timeout. Its
// idle connections are closed when the test ends. On a fake clock it
// verifies the server's certificate at the fake time, since the server
// renews its certificate by that clock.
func (e *Env) Client(t testing.TB, cert *tls.Certificate) *apiclient.Client {
	t.Helper()
	o := apiclient.Options{ServerURL: e.URL, Roots: e.Roots, Certificate: cert, Timeout: 10 * time.Second}
	if _, fake := e.Clock.(*clock.Fake); fake {
		o.VerifyConnection = e.verifyServer
	}
	c, err := apiclient.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// WriteClientFiles writes cert into dir the way `certgate enroll` does:
// key.pem (0600), cert.pem (the chain) and bundle.pem (Root).
func (e *Env) WriteClientFiles(t testing.TB, dir string, cert tls.Certificate) {
	t.Helper()
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		t.Fatalf("testenv: the private key is a %T, not a crypto.Signer", cert.PrivateKey)
	}
	chain := make([]*x509.Certificate, len(cert.Certificate))
	for i, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("testenv: certificate %d: %v", i, err)
		}
		chain[i] = c
	}
	creds, err := certgatetls.NewCredentials(key, chain, []*x509.Certificate{e.Root})
	if err != nil {
		t.Fatal(err)
	}
	if err := certgatetls.WriteCredentials(dir, creds); err != nil {
		t.Fatal(err)
	}
}

// ReadLeaf returns the first certificate of dir/cert.pem, as enroll,
// WriteClientFiles and the agent write it.
func ReadLeaf(t testing.TB, dir string) *x509.Certificate {
	t.Helper()
	leaf, err := certgatetls.ReadLeaf(dir)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// MTLSClient is an HTTP client presenting the credentials in dir (cert.pem,
// key.pem) and trusting roots, with a 10 s timeout; its idle connections
// close when the test ends.
func MTLSClient(t testing.TB, dir string, roots *x509.CertPool) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

package gateway

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// leafOnlyClient is an HTTP client that presents leaf without its chain,
// as openssl -cert without -cert_chain and many Java and device stacks do.
func (e *env) leafOnlyClient(leaf *testca.Leaf) *http1Client {
	tc := e.tlsConfig(nil)
	tc.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}}
	tc.NextProtos = []string{"http/1.1"}
	return &http1Client{e: e, tc: tc}
}

type http1Client struct {
	e  *env
	tc *tls.Config
}

// get does one GET on a new connection and returns the status, or 0 with
// the error when the connection failed.
func (c *http1Client) get(path string) (int, error) {
	s := &h1Sender{e: c.e, tc: c.tc}
	defer s.close()
	status, _, err := s.do(path)
	return status, err
}

// TestLeafOnlyClients: a client that sends only its leaf verifies when the
// gateway knows the intermediate, from its bundle (root and intermediate:
// this used to panic and end the process, revoked client or not), from
// its own chain, or from SetIntermediates (the CA's next intermediate,
// published through the feed).
func TestLeafOnlyClients(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("device"))
	c := e.leafOnlyClient(leaf)

	// The gateway's own chain (gateway.pem: leaf, intermediate) names the
	// intermediate.
	if status, err := c.get("/x"); err != nil || status != 200 {
		t.Fatalf("leaf only, intermediate from the gateway's chain: %d %v", status, err)
	}

	// A bundle with root and intermediate; a root-issued leaf; a revoked
	// leaf-only client. None may take the gateway down.
	bundle := testca.EncodeCerts(e.ca.Root, e.ca.Intermediate)
	if err := os.WriteFile(filepath.Join(e.dir, "bundle.pem"), bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	rootIssued := issueFrom(t, e.ca.Root, e.ca.RootKey, "spiffe://example.org/svc/root-issued")
	revoked := e.ca.Issue(t, withSvc("revoked"))
	e.revoked.Update(revocation.NewSet(1, e.clock.Now(), revocation.SerialOf(revoked.Cert)))
	for _, tc := range []struct {
		name string
		leaf *testca.Leaf
		ok   bool
	}{
		{"leaf only, bundle has the intermediate", leaf, true},
		{"root-issued leaf", rootIssued, true},
		{"revoked, leaf only", revoked, false},
		{"after the revoked client", leaf, true},
	} {
		status, err := e.leafOnlyClient(tc.leaf).get("/x")
		if (status == 200) != tc.ok {
			t.Fatalf("%s: status %d %v", tc.name, status, err)
		}
	}

	// An intermediate the gateway does not know yet: the CA's next one.
	next, nextKey := newIntermediate(t, e.ca, "example.org next intermediate")
	fromNext := issueFrom(t, next, nextKey, "spiffe://example.org/svc/next")
	if status, _ := e.leafOnlyClient(fromNext).get("/x"); status == 200 {
		t.Fatal("a leaf of an unknown intermediate was accepted")
	}
	e.gw.SetIntermediates("feed", []*x509.Certificate{next})
	if status, err := e.leafOnlyClient(fromNext).get("/x"); err != nil || status != 200 {
		t.Fatalf("after SetIntermediates: %d %v", status, err)
	}
	// A reload keeps what the feed published.
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	if status, err := e.leafOnlyClient(fromNext).get("/x"); err != nil || status != 200 {
		t.Fatalf("after a reload: %d %v", status, err)
	}
	e.gw.SetIntermediates("feed", nil)
	if status, _ := e.leafOnlyClient(fromNext).get("/x"); status == 200 {
		t.Fatal("accepted after the intermediate was withdrawn")
	}
}

func newIntermediate(t *testing.T, ca *testca.CA, cn string) (*x509.Certificate, crypto.Signer) {
	key := genKey(t)
	tmpl := caTmpl(cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), 0)
	d := mkCert(t, tmpl, &dcert{cert: ca.Root, key: ca.RootKey}, key)
	return d.cert, key
}

// issueFrom issues a client leaf from any CA certificate and key.
func issueFrom(t *testing.T, issuer *x509.Certificate, key crypto.Signer, id string) *testca.Leaf {
	t.Helper()
	u, _ := url.Parse(id)
	lk := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{u},
	}
	c := mkCertWithKey(t, tmpl, &dcert{cert: issuer, key: key}, lk)
	return &testca.Leaf{Cert: c, Chain: []*x509.Certificate{c}, Key: lk}
}

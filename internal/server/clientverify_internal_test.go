package server

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/testca"
)

func TestClientVerifier(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	ca := testca.New(t, "example.org", testca.WithNow(now))
	clock := func() time.Time { return now }
	v := newClientVerifier(ca.Pool(), ca.Intermediate, "example.org", clock)
	if v.issuer == nil {
		t.Fatal("no shortcut for an intermediate directly under a root")
	}
	other := testca.New(t, "example.org", testca.WithNow(now))
	state := func(l *testca.Leaf) tls.ConnectionState { return tls.ConnectionState{PeerCertificates: l.Chain} }
	good := ca.Issue(t, testca.WithID("spiffe://example.org/svc/a"))
	gateway := ca.Issue(t, testca.WithID("spiffe://example.org/gateway/gw"), testca.WithDNS("gw.example.org"), testca.WithIPs(net.IPv4(127, 0, 0, 1)))
	for _, c := range []struct {
		name     string
		cs       tls.ConnectionState
		shortcut bool
		err      string
	}{
		{"no certificate", tls.ConnectionState{}, false, ""},
		{"leaf of the intermediate", state(good), true, ""},
		{"leaf alone, no intermediate sent", tls.ConnectionState{PeerCertificates: good.Chain[:1]}, true, ""},
		{"gateway leaf with host names: full verification", state(gateway), false, ""},
		{"another CA", state(other.Issue(t, testca.WithID("spiffe://example.org/svc/a"))), false, "server: client certificate: x509: certificate signed by unknown authority"},
		{"no clientAuth", state(ca.Issue(t, testca.WithID("spiffe://example.org/svc/a"), testca.WithEKU(x509.ExtKeyUsageServerAuth))), true, "server: client certificate: x509: certificate specifies an incompatible key usage"},
		{"expired", state(ca.Issue(t, testca.WithID("spiffe://example.org/svc/a"), testca.WithValidity(now.Add(-2*time.Hour), now.Add(-time.Hour)))), true, "server: client certificate: x509: certificate has expired or is not yet valid: "},
		{"resumed, still valid", tls.ConnectionState{PeerCertificates: good.Chain, DidResume: true}, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.cs.PeerCertificates) > 0 {
				if got := v.shortcut(c.cs.PeerCertificates[0], now); got != c.shortcut {
					t.Errorf("shortcut = %v, want %v", got, c.shortcut)
				}
			}
			err := v.verifyConnection(c.cs)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err != "" && (err == nil || !strings.HasPrefix(err.Error(), c.err)):
				t.Fatalf("got %v, want %q...", err, c.err)
			}
		})
	}
	// A resumed session whose certificate has expired since.
	later := func() time.Time { return good.Cert.NotAfter.Add(time.Second) }
	lv := newClientVerifier(ca.Pool(), ca.Intermediate, "example.org", later)
	err := lv.verifyConnection(tls.ConnectionState{PeerCertificates: good.Chain, DidResume: true})
	if err == nil || err.Error() != "server: client certificate is not valid now" {
		t.Fatalf("resumed with an expired certificate: %v", err)
	}
	// An intermediate that does not chain to the roots: never a shortcut.
	if nv := newClientVerifier(other.Pool(), ca.Intermediate, "example.org", clock); nv.issuer != nil {
		t.Fatal("shortcut for an intermediate outside the bundle")
	}
	// Outside the root's validity: no shortcut.
	if v.shortcut(good.Cert, ca.Root.NotAfter.Add(time.Second)) {
		t.Fatal("shortcut after the root expired")
	}
}

// TestClientVerifierNameConstraint: a leaf of our own intermediate naming
// another trust domain (which the issuer never signs; made here by hand)
// takes the full verification, where the root's name constraint refuses it.
func TestClientVerifierNameConstraint(t *testing.T) {
	now := time.Now()
	rootKey, _ := keytype.Generate(keytype.ECDSAP256)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: "example.org", Key: rootKey, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := keytype.Generate(keytype.ECDSAP256)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	v := newClientVerifier(pool, inter, "example.org", func() time.Time { return now })
	leafKey, _ := keytype.Generate(keytype.ECDSAP256)
	for _, c := range []struct{ uri, err string }{
		{"spiffe://example.org/svc/a", ""},
		{"spiffe://evil.org/svc/a", "server: client certificate: x509: "},
	} {
		u, _ := url.Parse(c.uri)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
			AuthorityKeyId: inter.SubjectKeyId,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, leafKey.Public(), interKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		err = v.verifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf, inter}})
		switch {
		case c.err == "" && err != nil:
			t.Fatalf("%s refused: %v", c.uri, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), "constraint")):
			t.Fatalf("%s: %v, want a name constraint violation", c.uri, err)
		}
	}
}

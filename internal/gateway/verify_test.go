package gateway

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// The verified-intermediate cache: which chains fill it, which use it, and
// that a leaf taking the fast path gets every check a chain build gives.
func TestVerifyChainCache(t *testing.T) {
	ca := testca.New(t, td)
	now := time.Now()
	chain := func(l *testca.Leaf, extra ...*x509.Certificate) []*x509.Certificate {
		return append([]*x509.Certificate{l.Cert, ca.Intermediate}, extra...)
	}

	t.Run("a chain build fills it, the next leaf uses it", func(t *testing.T) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		if _, err := tr.verifyChain(chain(ca.Issue(t, withSvc("a"))), now); err != nil {
			t.Fatal(err)
		}
		if tr.cached(ca.Intermediate.Raw) == nil {
			t.Fatal("intermediate not cached")
		}
		b := ca.Issue(t, withSvc("b"))
		if !tr.takesFastPath(chain(b), now) {
			t.Fatal("second leaf does not take the fast path")
		}
		id, err := tr.verifyChain(chain(b), now)
		if err != nil || id.String() != "spiffe://example.org/svc/b" {
			t.Fatalf("verifyChain = %v, %v", id, err)
		}
	})

	t.Run("a client that also sends the root", func(t *testing.T) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		if _, err := tr.verifyChain(chain(ca.Issue(t, withSvc("a")), ca.Root), now); err != nil {
			t.Fatal(err)
		}
		if !tr.takesFastPath(chain(ca.Issue(t, withSvc("b")), ca.Root), now) {
			t.Fatal("leaf, intermediate, root does not take the fast path")
		}
	})

	t.Run("a leaf refused after the chain build does not fill it", func(t *testing.T) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		_, err := tr.verifyChain(chain(ca.Issue(t, testca.WithID("spiffe://other.org/svc/a"))), now)
		if err == nil || err.Reason != ReasonBadIdentity {
			t.Fatalf("other trust domain: %v", err)
		}
		if tr.cached(ca.Intermediate.Raw) != nil {
			t.Fatal("cached from a refused leaf")
		}
	})

	t.Run("a leaf with DNS names is verified in full and does not fill it", func(t *testing.T) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		if _, err := tr.verifyChain(chain(ca.Issue(t, withSvc("a"), testca.WithDNS("a.example.org"))), now); err != nil {
			t.Fatal(err)
		}
		if tr.cached(ca.Intermediate.Raw) != nil {
			t.Fatal("cached from a leaf with DNS names")
		}
	})

	tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
	if _, err := tr.verifyChain(chain(ca.Issue(t, withSvc("a"))), now); err != nil {
		t.Fatal(err)
	}
	// Another CA whose intermediate has the same name: its leaf, sent with
	// our intermediate, names the right issuer but its signature is not
	// our intermediate's.
	forger := testca.New(t, td)
	forged := forger.Issue(t, withSvc("admin"))
	ica := ca.Intermediate
	for _, tc := range []struct {
		name   string
		certs  []*x509.Certificate
		at     time.Time
		reason Reason
		msg    string
	}{
		{"forged signature", []*x509.Certificate{forged.Cert, ica}, now, ReasonUnknownAuthority,
			`gateway: client certificate refused (unknown_authority): x509: certificate signed by unknown authority (possibly because of "x509: ECDSA verification failure" while trying to verify candidate authority certificate "example.org test intermediate")`},
		{"expired leaf", chain(ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-2*time.Hour), now.Add(-time.Hour)))), now, ReasonExpired,
			"gateway: client certificate refused (expired): certificate expired at " + now.Add(-time.Hour).UTC().Format(time.RFC3339) + ", now is " + now.UTC().Format(time.RFC3339)},
		{"intermediate expired", chain(ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-time.Hour), ica.NotAfter.Add(48*time.Hour)))), ica.NotAfter.Add(time.Hour), ReasonExpired,
			"gateway: client certificate refused (expired): x509: certificate has expired or is not yet valid: current time " + ica.NotAfter.Add(time.Hour).UTC().Format(time.RFC3339) + " is after " + ica.NotAfter.UTC().Format(time.RFC3339)},
		{"CA certificate as leaf", []*x509.Certificate{ica, ica}, now, ReasonWrongUsage,
			"gateway: client certificate refused (wrong_usage): certificate lacks the clientAuth extended key usage"},
		{"serverAuth only", chain(ca.Issue(t, withSvc("a"), testca.WithEKU(x509.ExtKeyUsageServerAuth))), now, ReasonWrongUsage,
			"gateway: client certificate refused (wrong_usage): certificate lacks the clientAuth extended key usage"},
		{"other trust domain", chain(ca.Issue(t, testca.WithID("spiffe://other.org/svc/a"))), now, ReasonBadIdentity,
			`gateway: client certificate refused (bad_identity): SPIFFE ID outside the trust domain "example.org": spiffe://other.org/svc/a`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.verifyChain(tc.certs, tc.at)
			if err == nil || err.Reason != tc.reason || err.Error() != tc.msg {
				t.Fatalf("verifyChain = %v\nwant (%s) %s", err, tc.reason, tc.msg)
			}
		})
	}
}

// takesFastPath reports whether certs verify by the verified-issuer cache.
func (t *trust) takesFastPath(certs []*x509.Certificate, now time.Time) bool {
	return fastPathLeaf(certs[0]) && t.fastPath(certs[0], certs[1:], t.inter.Load(), now)
}

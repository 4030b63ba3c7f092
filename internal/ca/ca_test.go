package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

type testCA struct {
	root, inter *x509.Certificate
	issuer      *Issuer
	clock       *clock.Fake
}

func newTestCA(t testing.TB, kt keytype.Type) testCA {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	rk, err := keytype.Generate(kt)
	if err != nil {
		t.Fatal(err)
	}
	root, err := CreateRoot(RootOptions{TrustDomain: "example.org", Key: rk, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ik, _ := keytype.Generate(kt)
	inter, err := CreateIntermediate(IntermediateOptions{Root: root, RootKey: rk, Key: ik, Now: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(inter, ik, "example.org", clk)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{root: root, inter: inter, issuer: iss, clock: clk}
}

func (c testCA) issue(t *testing.T, id string, p Profile) *x509.Certificate {
	t.Helper()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	prep, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse(id)}, p)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.issuer.Issue(prep)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (c testCA) verify(leaf *x509.Certificate, at time.Time) error {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.root)
	inters.AddCert(c.inter)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func TestHierarchy(t *testing.T) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.Ed25519, keytype.RSA3072} {
		t.Run(string(kt), func(t *testing.T) {
			c := newTestCA(t, kt)
			now := c.clock.Now()
			if !c.root.IsCA || c.root.MaxPathLen != 2 || c.root.PermittedURIDomains[0] != "example.org" || len(c.root.PermittedURIDomains) != 1 || !c.root.PermittedDNSDomainsCritical {
				t.Fatalf("root: CA %v pathlen %d constraints %v", c.root.IsCA, c.root.MaxPathLen, c.root.PermittedURIDomains)
			}
			if got := c.root.NotAfter.Sub(now); got != DefaultRootLifetime {
				t.Fatalf("root lifetime %s", got)
			}
			if !c.inter.IsCA || c.inter.MaxPathLen != 0 || !c.inter.MaxPathLenZero {
				t.Fatalf("intermediate: CA %v pathlen %d zero %v", c.inter.IsCA, c.inter.MaxPathLen, c.inter.MaxPathLenZero)
			}
			if got := c.inter.NotAfter.Sub(now); got != DefaultIntermediateLifetime {
				t.Fatalf("intermediate lifetime %s", got)
			}
			if !bytes.Equal(c.inter.AuthorityKeyId, c.root.SubjectKeyId) || len(c.inter.SubjectKeyId) != 20 {
				t.Fatal("intermediate SKI/AKI")
			}
			leaf := c.issue(t, "spiffe://example.org/svc/billing", ClientProfile)
			if err := c.verify(leaf, now); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLeafProfile(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	now := c.clock.Now()
	leaf := c.issue(t, "spiffe://example.org/svc/billing", ClientProfile)
	if bits := leaf.SerialNumber.BitLen(); bits < 128 {
		t.Fatalf("serial has %d bits", bits)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("validity %s .. %s", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("usage %v %v", leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/svc/billing" || leaf.Subject.CommonName != "billing" {
		t.Fatalf("names %v %q", leaf.URIs, leaf.Subject.CommonName)
	}
	if leaf.IsCA || len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
		t.Fatal("leaf is a CA or has host names")
	}
	if len(leaf.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, c.inter.SubjectKeyId) {
		t.Fatal("leaf SKI/AKI")
	}
	// Serials are random: many leaves, no repeats.
	seen := map[string]bool{}
	for range 200 {
		s := SerialHex(c.issue(t, "spiffe://example.org/x", ClientProfile).SerialNumber)
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
}

func TestLifetimeCappedAtIntermediate(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	c.clock.Set(c.inter.NotAfter.Add(-time.Hour))
	leaf := c.issue(t, "spiffe://example.org/svc/billing", ClientProfile)
	if !leaf.NotAfter.Equal(c.inter.NotAfter) {
		t.Fatalf("leaf outlives its CA: %s > %s", leaf.NotAfter, c.inter.NotAfter)
	}
	c.clock.Set(c.inter.NotAfter.Add(time.Second))
	key, _ := keytype.Generate(keytype.ECDSAP256)
	_, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/x")}, ClientProfile)
	if err == nil || err.Error() != "ca: intermediate has expired" {
		t.Fatalf("after intermediate expiry: %v", err)
	}
}

func TestPrepareRefuses(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	for name, tc := range map[string]struct {
		r    Request
		p    Profile
		want string
	}{
		"other trust domain": {Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://evil.org/x")}, ClientProfile,
			`ca: identity not allowed: spiffe://evil.org/x is outside trust domain "example.org"`},
		"no identity": {Request{PublicKey: key.Public()}, ClientProfile, "ca: identity not allowed: no identity"},
		"hostnames on a client": {Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/x"), DNSNames: []string{"a.example"}}, ClientProfile,
			"ca: request does not fit the profile: profile client allows no DNS or IP names"},
		"no key": {Request{Identity: identity.MustParse("spiffe://example.org/x")}, ClientProfile, "ca: unsupported key type: no public key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.issuer.Prepare(tc.r, tc.p)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestPreparedIsSingleUse(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	other := newTestCA(t, keytype.ECDSAP256)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/x")}, ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.issuer.Issue(p); err == nil || err.Error() != "ca: prepared by another issuer" {
		t.Fatalf("issued by another issuer: %v", err)
	}
	if _, err := c.issuer.Issue(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.issuer.Issue(p); !errors.Is(err, ErrReused) {
		t.Fatalf("second issue: %v", err)
	}
}

// TestNameConstraint: the root's URI constraint makes verifiers refuse an
// identity of another trust domain even if the intermediate signed it.
func TestNameConstraint(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	c.issuer.trustDomain = "evil.org" // a compromised or misconfigured intermediate
	leaf := c.issue(t, "spiffe://evil.org/svc/billing", ClientProfile)
	err := c.verify(leaf, c.clock.Now())
	if err == nil || !strings.Contains(err.Error(), `URI "spiffe://evil.org/svc/billing" is not permitted by any constraint`) {
		t.Fatalf("verify of an out-of-domain leaf: %v", err)
	}
}

func TestServerProfile(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/server"),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ServerProfile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.issuer.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.root)
	inters.AddCert(c.inter)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: roots, Intermediates: inters, CurrentTime: c.clock.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestReasons(t *testing.T) {
	for in, want := range map[string]int{"": 0, "keyCompromise": 1, "KEYCOMPROMISE": 1, "9": 9, "aACompromise": 10} {
		if got, err := ParseReason(in); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"certificateHold", "removeFromCRL", "6", "8", "x"} {
		if _, err := ParseReason(bad); err == nil {
			t.Errorf("ParseReason(%q) accepted", bad)
		}
	}
	if ReasonName(1) != "keyCompromise" {
		t.Fatal(ReasonName(1))
	}
}

// TestProfileDefects pins what issue 12 found wrong in the profiles: an
// RSA client certificate carries digitalSignature only (no
// keyEncipherment next to clientAuth), the delegated OCSP signer names no
// CRL or OCSP responder (it is never checked for revocation), and leaves
// name their own issuer's CRL, the OCSP responder and their issuer's
// certificate.
func TestProfileDefects(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	c.issuer.CRLURL, c.issuer.OCSPURL, c.issuer.IssuerURL = "http://s/crl/i", "http://s/ocsp", "http://s/ca/i.crt"
	for _, kt := range []keytype.Type{keytype.RSA2048, keytype.ECDSAP256, keytype.Ed25519} {
		key, _ := keytype.Generate(kt)
		p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/x")}, ClientProfile)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := c.issuer.Issue(p)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("%s client key usage %b, want digitalSignature only", kt, leaf.KeyUsage)
		}
		if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != "http://s/crl/i" || len(leaf.OCSPServer) != 1 ||
			len(leaf.IssuingCertificateURL) != 1 || leaf.IssuingCertificateURL[0] != "http://s/ca/i.crt" {
			t.Errorf("%s leaf names %v %v %v", kt, leaf.CRLDistributionPoints, leaf.OCSPServer, leaf.IssuingCertificateURL)
		}
	}
	signer := c.issue(t, "spiffe://example.org/server/ocsp-signer", OCSPSigningProfile)
	if len(signer.CRLDistributionPoints)+len(signer.OCSPServer) != 0 {
		t.Errorf("OCSP signer names CRL %v and OCSP %v", signer.CRLDistributionPoints, signer.OCSPServer)
	}
}

package ca

import (
	"crypto/rand"
	"crypto/x509"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

// leafFromTemplate gives what x509.ParseCertificate gives, every field,
// for every profile, issuer key and subject key type, with and without
// names and status URLs, at a time with fractions of a second in a zone
// other than UTC.
func TestLeafFromTemplate(t *testing.T) {
	zone := time.FixedZone("x", 5*3600+1800)
	for _, caKT := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.Ed25519, keytype.RSA2048} {
		c := newTestCA(t, caKT)
		c.clock.Set(time.Date(2026, 11, 27, 12, 0, 0, 123456789, zone))
		for _, urls := range []bool{false, true} {
			if urls {
				c.issuer.CRLURL, c.issuer.OCSPURL, c.issuer.IssuerURL = "http://ca.example.org/crl", "http://ca.example.org/ocsp", "http://ca.example.org/ca.crt"
			}
			for _, leafKT := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.Ed25519, keytype.RSA2048} {
				key, err := keytype.Generate(leafKT)
				if err != nil {
					t.Fatal(err)
				}
				for _, tc := range []struct {
					p   Profile
					req Request
				}{
					{ClientProfile, Request{}},
					{GatewayProfile, Request{}},
					{ServerProfile, Request{DNSNames: []string{"localhost", "a.example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("::1"), net.IP{10, 1, 2, 3}}}},
				} {
					r := tc.req
					r.PublicKey = key.Public()
					r.Identity = identity.MustParse("spiffe://example.org/ns/x/sa/y")
					p, err := c.issuer.Prepare(r, tc.p)
					if err != nil {
						t.Fatal(err)
					}
					der, err := x509.CreateCertificate(rand.Reader, p.tmpl, c.issuer.cert, p.pub, c.issuer.key)
					if err != nil {
						t.Fatal(err)
					}
					want, err := x509.ParseCertificate(der)
					if err != nil {
						t.Fatal(err)
					}
					sa, ok := signatureAlgorithmOf(want)
					if !ok {
						t.Fatal("no signature algorithm")
					}
					got, ok := leafFromTemplate(der, p.tmpl, c.issuer.cert, p.pub, sa)
					if !ok {
						t.Fatalf("%s/%s/%s: not built", caKT, leafKT, tc.p.Name)
					}
					compareCerts(t, string(caKT)+"/"+string(leafKT)+"/"+tc.p.Name, got, want)
				}
			}
		}
	}
}

func compareCerts(t *testing.T, name string, got, want *x509.Certificate) {
	t.Helper()
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := 0; i < gv.NumField(); i++ {
		f := gv.Type().Field(i)
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if f.Name == "URIs" {
			// The template's *url.URL against a parsed one: the same text.
			gu, wu := got.URIs, want.URIs
			if len(gu) != len(wu) {
				t.Errorf("%s: URIs %v, want %v", name, gu, wu)
				continue
			}
			for j := range gu {
				if gu[j].String() != wu[j].String() {
					t.Errorf("%s: URIs %v, want %v", name, gu, wu)
				}
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %#v, want %#v", name, f.Name, g, w)
		}
	}
}

// Issue parses its first leaf and builds the later ones; each is what the
// parser gives. A leaf whose signature algorithm is not the one seen first
// is parsed.
func TestIssueBuildsLaterLeaves(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	if c.issuer.sigAlg.Load() != nil {
		t.Fatal("signature algorithm known before the first leaf")
	}
	first := c.issue(t, "spiffe://example.org/a", ClientProfile)
	sa := c.issuer.sigAlg.Load()
	if sa == nil || sa.alg != first.SignatureAlgorithm {
		t.Fatalf("signature algorithm after the first leaf: %+v", sa)
	}
	for _, p := range []Profile{ClientProfile, GatewayProfile, ocspSignerProfileForTest()} {
		got := c.issue(t, "spiffe://example.org/b", p)
		want, err := x509.ParseCertificate(got.Raw)
		if err != nil {
			t.Fatal(err)
		}
		compareCerts(t, p.Name, got, want)
		if err := c.verify(got, c.clock.Now()); err != nil && p.Name != "ocsp-test" {
			t.Fatal(err)
		}
	}
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/c")}, ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, p.tmpl, c.issuer.cert, p.pub, c.issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	other := &signatureAlgorithm{alg: x509.ECDSAWithSHA384, der: []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}}
	if _, ok := leafFromTemplate(der, p.tmpl, c.issuer.cert, p.pub, other); ok {
		t.Fatal("built with another signature algorithm")
	}
}

func ocspSignerProfileForTest() Profile {
	p := ClientProfile
	p.Name, p.OCSPNoCheck = "ocsp-test", true
	return p
}

// BenchmarkLeaf: the certificate just signed, parsed or built.
func BenchmarkLeaf(b *testing.B) {
	t := &testing.T{}
	c := newTestCA(t, keytype.ECDSAP256)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/c")}, ClientProfile)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, p.tmpl, c.issuer.cert, p.pub, c.issuer.key)
	if err != nil {
		b.Fatal(err)
	}
	want, _ := x509.ParseCertificate(der)
	sa, _ := signatureAlgorithmOf(want)
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := x509.ParseCertificate(der); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, ok := leafFromTemplate(der, p.tmpl, c.issuer.cert, p.pub, sa); !ok {
				b.Fatal("not built")
			}
		}
	})
}

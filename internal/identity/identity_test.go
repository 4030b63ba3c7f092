package identity

import (
	"crypto/x509"
	"net/url"
	"testing"
)

func TestParse(t *testing.T) {
	for _, s := range []string{"spiffe://example.org/svc/billing", "spiffe://example.org", "spiffe://a-b_c.d/x.y/Z-9"} {
		id, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if id.String() != s || id.URL().String() != s {
			t.Fatalf("round trip %q -> %q / %q", s, id, id.URL())
		}
	}
	for s, want := range map[string]string{
		"http://example.org/x":        `invalid SPIFFE ID "http://example.org/x": must start with spiffe://`,
		"spiffe://":                   `invalid SPIFFE ID "spiffe://": trust domain is empty`,
		"spiffe://Example.org/x":      `invalid SPIFFE ID "spiffe://Example.org/x": trust domain "Example.org" has invalid character 'E' (lowercase letters, digits, '.', '-', '_' only)`,
		"spiffe://example.org/":       `invalid SPIFFE ID "spiffe://example.org/": path must not end with '/'`,
		"spiffe://example.org/a//b":   `invalid SPIFFE ID "spiffe://example.org/a//b": path has an empty segment or a trailing '/'`,
		"spiffe://example.org/a/../b": `invalid SPIFFE ID "spiffe://example.org/a/../b": path has a '.' or '..' segment`,
		"spiffe://example.org/a?b":    `invalid SPIFFE ID "spiffe://example.org/a?b": path segment "a?b" has invalid character '?'`,
		"spiffe://user@example.org/a": `invalid SPIFFE ID "spiffe://user@example.org/a": trust domain "user@example.org" has invalid character '@' (lowercase letters, digits, '.', '-', '_' only)`,
		"spiffe://example.org:443/a":  `invalid SPIFFE ID "spiffe://example.org:443/a": trust domain "example.org:443" has invalid character ':' (lowercase letters, digits, '.', '-', '_' only)`,
	} {
		_, err := Parse(s)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v\nwant %s", s, err, want)
		}
	}
}

func TestFromCertificate(t *testing.T) {
	u1, _ := url.Parse("spiffe://example.org/svc/a")
	u2, _ := url.Parse("spiffe://other.org/svc/a")
	if _, err := FromCertificate(&x509.Certificate{}); err != ErrNoID {
		t.Fatalf("no URI: %v", err)
	}
	if _, err := FromCertificate(&x509.Certificate{URIs: []*url.URL{u1, u2}}); err != ErrManyIDs {
		t.Fatalf("two URIs: %v", err)
	}
	id, err := FromCertificateIn(&x509.Certificate{URIs: []*url.URL{u1}}, "example.org")
	if err != nil || id.String() != u1.String() || id.Name() != "a" {
		t.Fatalf("got %v %v", id, err)
	}
	_, err = FromCertificateIn(&x509.Certificate{URIs: []*url.URL{u2}}, "example.org")
	if err == nil || err.Error() != `SPIFFE ID outside the trust domain "example.org": spiffe://other.org/svc/a` {
		t.Fatalf("wrong TD: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("spiffe://example.org/svc/billing")
	f.Add("spiffe://x/..")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, id)
		}
	})
}

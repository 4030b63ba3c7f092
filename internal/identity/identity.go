// Package identity is the one place that maps between X.509 certificates and
// certgate identities.
//
// A certgate identity is a SPIFFE ID, spiffe://<trust-domain>/<path>, carried
// as the only URI SAN of a certificate. This package parses and validates IDs
// and extracts them from certificates; it does not verify chains (see the
// callers that do) and does not decide what an identity may do (authz).
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of every certgate identity.
const Scheme = "spiffe"

// maxLength bounds an ID as the SPIFFE spec does (2048 bytes), so an
// attacker-chosen SAN cannot make every log line and header huge.
const maxLength = 2048

// Sentinel errors callers branch on.
var (
	ErrInvalid = errors.New("invalid SPIFFE ID")
	ErrNoID    = errors.New("certificate has no SPIFFE ID")
	ErrManyIDs = errors.New("certificate has more than one URI SAN")
	ErrWrongTD = errors.New("SPIFFE ID outside the trust domain")
)

// ID is a parsed SPIFFE ID. The zero value is not a valid ID.
type ID struct {
	trustDomain string
	path        string // empty or starting with "/"
}

// Parse parses and validates s as a SPIFFE ID.
func Parse(s string) (ID, error) {
	if len(s) > maxLength {
		return ID{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, maxLength)
	}
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return ID{}, fmt.Errorf("%w %q: must start with spiffe://", ErrInvalid, s)
	}
	td, path, _ := strings.Cut(rest, "/")
	if err := ValidateTrustDomain(td); err != nil {
		return ID{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
	}
	if strings.Contains(rest, "/") {
		path = "/" + path
		if err := validatePath(path); err != nil {
			return ID{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
		}
	}
	return ID{trustDomain: td, path: path}, nil
}

// New builds an ID from a trust domain and a path such as "/svc/billing".
func New(trustDomain, path string) (ID, error) {
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return Parse(Scheme + "://" + trustDomain + path)
}

// MustParse is Parse for constants in tests and examples; it panics on error.
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

// ValidateTrustDomain checks a trust domain name: lowercase letters, digits,
// dots, dashes and underscores, as the SPIFFE specification allows.
func ValidateTrustDomain(td string) error {
	if td == "" {
		return errors.New("trust domain is empty")
	}
	if len(td) > 255 {
		return errors.New("trust domain is longer than 255 bytes")
	}
	for _, c := range td {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("trust domain %q has invalid character %q (lowercase letters, digits, '.', '-', '_' only)", td, c)
		}
	}
	return nil
}

func validatePath(p string) error {
	if p == "/" {
		return errors.New("path must not end with '/'")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return errors.New("path has an empty segment or a trailing '/'")
		case ".", "..":
			return errors.New("path has a '.' or '..' segment")
		}
		for _, c := range seg {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			default:
				return fmt.Errorf("path segment %q has invalid character %q", seg, c)
			}
		}
	}
	return nil
}

// TrustDomain returns the trust domain name, e.g. "example.org".
func (id ID) TrustDomain() string { return id.trustDomain }

// Path returns the path, e.g. "/svc/billing", or "" for the trust domain's own ID.
func (id ID) Path() string { return id.path }

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id.trustDomain == "" }

// String returns the ID in its canonical form.
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return Scheme + "://" + id.trustDomain + id.path
}

// URL returns the ID as a URL, for a certificate's URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.trustDomain, Path: id.path}
}

// MemberOf reports whether id belongs to the trust domain td.
func (id ID) MemberOf(td string) bool { return id.trustDomain == td }

// Name returns the last path segment, used as a readable common name.
func (id ID) Name() string {
	if i := strings.LastIndexByte(id.path, '/'); i >= 0 && i+1 < len(id.path) {
		return id.path[i+1:]
	}
	return id.trustDomain
}

// FromCertificate returns the SPIFFE ID of cert. A certificate must carry
// exactly one URI SAN, and it must be a valid SPIFFE ID.
func FromCertificate(cert *x509.Certificate) (ID, error) {
	switch len(cert.URIs) {
	case 0:
		return ID{}, ErrNoID
	case 1:
	default:
		return ID{}, ErrManyIDs
	}
	return Parse(cert.URIs[0].String())
}

// FromCertificateIn is FromCertificate plus a trust domain check.
func FromCertificateIn(cert *x509.Certificate, td string) (ID, error) {
	id, err := FromCertificate(cert)
	if err != nil {
		return ID{}, err
	}
	if !id.MemberOf(td) {
		return ID{}, fmt.Errorf("%w %q: %s", ErrWrongTD, td, id)
	}
	return id, nil
}

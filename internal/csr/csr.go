package csr

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
)

// MaxSize bounds a PEM request. The largest request certgate accepts, an
// RSA-4096 key with a SPIFFE ID of the longest allowed length (2048 bytes),
// is under 5 KB; 16 KiB leaves room for other tools' extras and refuses
// anything bigger before it is parsed.
const MaxSize = 16 << 10

// Sentinel errors callers branch on (the server maps them to API errors).
var (
	ErrMalformed = errors.New("csr: malformed request")
	ErrTooLarge  = errors.New("csr: request too large")
	ErrSignature = errors.New("csr: signature does not verify")
	ErrKeyType   = errors.New("csr: key type not allowed")
	ErrIdentity  = errors.New("csr: identity refused")
	ErrExtraSAN  = errors.New("csr: extra subject alternative names")
)

// Request is a checked CSR: what the CA may put in a certificate.
type Request struct {
	CSR       *x509.CertificateRequest
	PublicKey crypto.PublicKey
	KeyType   keytype.Type
	Identity  identity.ID
	// Host names, only with AllowHostnames (gateway certificates).
	DNSNames    []string
	IPAddresses []net.IP
}

// MaxHostnames bounds the DNS and IP SANs of one request.
const MaxHostnames = 32

// Option changes what Check accepts.
type Option func(*options)

type options struct{ hostnames bool }

// AllowHostnames lets a request carry DNS and IP SANs besides its SPIFFE
// ID, for certificates that also serve TLS (gateways). Wildcards, email
// and other name types stay refused.
func AllowHostnames() Option { return func(o *options) { o.hostnames = true } }

// checkError carries a full message for the user while matching both its
// sentinel and, when there is one, the underlying cause with errors.Is.
type checkError struct {
	msg   string
	kind  error
	cause error
}

func (e *checkError) Error() string { return e.msg }

func (e *checkError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func refuse(kind, cause error, format string, args ...any) error {
	return &checkError{msg: "csr: " + fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// Parse decodes exactly one PEM certificate request of at most MaxSize
// bytes. It does not check it; see Check.
func Parse(pemBytes []byte) (*x509.CertificateRequest, error) {
	if len(pemBytes) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(pemBytes), MaxSize)
	}
	c, err := pemutil.ParseCSR(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c, nil
}

// ParseAndCheck is Parse followed by Check.
func ParseAndCheck(pemBytes []byte, want identity.ID, opts ...Option) (Request, error) {
	c, err := Parse(pemBytes)
	if err != nil {
		return Request{}, err
	}
	return Check(c, want, opts...)
}

// Check decides whether c may be issued for want. In order: its signature
// verifies ([ErrSignature]), its key is on the allow list ([ErrKeyType]),
// it names exactly one URI SAN, a SPIFFE ID in want's trust domain and
// equal to want ([ErrIdentity]), and no other subject alternative name
// ([ErrExtraSAN]). The subject is ignored.
func Check(c *x509.CertificateRequest, want identity.ID, opts ...Option) (Request, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if c == nil {
		return Request{}, fmt.Errorf("%w: no request", ErrMalformed)
	}
	if want.IsZero() {
		return Request{}, refuse(ErrIdentity, nil, "no identity to check the request against")
	}
	if err := c.CheckSignature(); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	kt, err := keytype.Of(c.PublicKey)
	if err != nil {
		// keytype says what it found ("RSA 1024 bits (want ...)"); keep
		// that and drop its own prefix so the message reads once.
		found := strings.TrimPrefix(strings.TrimPrefix(err.Error(), keytype.ErrUnsupported.Error()), ": ")
		return Request{}, refuse(ErrKeyType, err, "key type not allowed: %s", found)
	}
	id, err := requestedID(c, want)
	if err != nil {
		return Request{}, err
	}
	if err := checkNoExtraSAN(c, o.hostnames); err != nil {
		return Request{}, err
	}
	r := Request{CSR: c, PublicKey: c.PublicKey, KeyType: kt, Identity: id}
	if o.hostnames {
		r.DNSNames, r.IPAddresses = c.DNSNames, c.IPAddresses
	}
	return r, nil
}

func requestedID(c *x509.CertificateRequest, want identity.ID) (identity.ID, error) {
	switch len(c.URIs) {
	case 0:
		return identity.ID{}, refuse(ErrIdentity, nil, "request has no URI SAN (want exactly one: %s)", want)
	case 1:
	default:
		return identity.ID{}, refuse(ErrIdentity, nil, "request has %d URI SANs (want exactly one: %s)", len(c.URIs), want)
	}
	id, err := identity.Parse(c.URIs[0].String())
	if err != nil {
		return identity.ID{}, refuse(ErrIdentity, err, "URI SAN is not a SPIFFE ID: %v", err)
	}
	if !id.MemberOf(want.TrustDomain()) {
		return identity.ID{}, refuse(ErrIdentity, nil, "identity %s is outside trust domain %s", id, want.TrustDomain())
	}
	if id != want {
		return identity.ID{}, refuse(ErrIdentity, nil, "asks for identity %s but may only have %s", id, want)
	}
	return id, nil
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidIssuerAltName  = asn1.ObjectIdentifier{2, 5, 29, 18}
)

// generalNameTypes names the GeneralName CHOICE tags of RFC 5280 4.2.1.6.
var generalNameTypes = [...]string{
	0: "otherName",
	1: "email (rfc822Name)",
	2: "DNS",
	3: "x400Address",
	4: "directoryName",
	5: "ediPartyName",
	6: "URI",
	7: "IP",
	8: "registeredID",
}

// checkNoExtraSAN refuses every name but the one URI SAN. crypto/x509 only
// surfaces DNS, email, IP and URI names, so the extension is read again to
// catch the other kinds a relying party might honour.
func checkNoExtraSAN(c *x509.CertificateRequest, hostnames bool) error {
	if hostnames {
		if n := len(c.DNSNames) + len(c.IPAddresses); n > MaxHostnames {
			return refuse(ErrExtraSAN, nil, "request has %d DNS and IP SANs (limit %d)", n, MaxHostnames)
		}
		for _, d := range c.DNSNames {
			if err := checkDNSName(d); err != nil {
				return refuse(ErrExtraSAN, nil, "DNS SAN %q: %v", d, err)
			}
		}
	} else if len(c.DNSNames) > 0 {
		return refuse(ErrExtraSAN, nil, "request has DNS SANs %v (only the SPIFFE ID is allowed)", c.DNSNames)
	} else if len(c.IPAddresses) > 0 {
		return refuse(ErrExtraSAN, nil, "request has IP SANs %v (only the SPIFFE ID is allowed)", c.IPAddresses)
	}
	if len(c.EmailAddresses) > 0 {
		return refuse(ErrExtraSAN, nil, "request has email SANs %v (only the SPIFFE ID is allowed)", c.EmailAddresses)
	}
	sans := 0
	for _, ext := range c.Extensions {
		switch {
		case ext.Id.Equal(oidIssuerAltName):
			return refuse(ErrExtraSAN, nil, "request has an issuerAltName extension (only the SPIFFE ID is allowed)")
		case !ext.Id.Equal(oidSubjectAltName):
			continue
		}
		if sans++; sans > 1 {
			return refuse(ErrExtraSAN, nil, "request has more than one subjectAltName extension")
		}
		var names []asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &names)
		if err != nil || len(rest) > 0 {
			// crypto/x509 parsed this extension already; this is only
			// reached if the two parsers disagree.
			return fmt.Errorf("%w: subjectAltName extension does not parse", ErrMalformed)
		}
		for _, n := range names {
			if n.Class == asn1.ClassContextSpecific && n.Tag == 6 {
				continue // the URI, checked above
			}
			if hostnames && n.Class == asn1.ClassContextSpecific && (n.Tag == 2 || n.Tag == 7) {
				continue // DNS and IP, checked above
			}
			kind := fmt.Sprintf("[%d] (class %d)", n.Tag, n.Class)
			if n.Class == asn1.ClassContextSpecific && n.Tag < len(generalNameTypes) {
				kind = generalNameTypes[n.Tag]
			}
			return refuse(ErrExtraSAN, nil, "request has a %s SAN (only the SPIFFE ID is allowed)", kind)
		}
	}
	return nil
}

// checkDNSName accepts a plain host name: letters, digits, '-' and '.',
// labels of 1 to 63 bytes, no wildcard.
func checkDNSName(d string) error {
	if d == "" || len(d) > 253 {
		return errors.New("empty or longer than 253 bytes")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty label or label longer than 63 bytes")
		}
		for _, ch := range label {
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return fmt.Errorf("invalid character %q (no wildcards)", ch)
			}
		}
	}
	return nil
}

// CreateWithHosts is Create with DNS and IP SANs, for a gateway's serving
// certificate.
func CreateWithHosts(key crypto.Signer, id identity.ID, dns []string, ips []net.IP) ([]byte, error) {
	if id.IsZero() {
		return nil, errors.New("csr: no identity")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: id.Name()}, URIs: []*url.URL{id.URL()}, DNSNames: dns, IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return pemutil.EncodeCSR(der), nil
}

// Create makes the PEM certificate request certgate's server accepts for
// id: signed by key, with id as its only URI SAN and CN id.Name() (the CA
// sets the CN of the certificate itself; this one is only for humans
// reading the request).
func Create(key crypto.Signer, id identity.ID) ([]byte, error) {
	if id.IsZero() {
		return nil, errors.New("csr: no identity")
	}
	if _, err := keytype.Of(key.Public()); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: id.Name()},
		URIs:    []*url.URL{id.URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return pemutil.EncodeCSR(der), nil
}

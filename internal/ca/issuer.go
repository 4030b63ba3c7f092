package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

// Profile is what kind of certificate to issue.
type Profile struct {
	Name        string
	Lifetime    time.Duration
	ExtKeyUsage []x509.ExtKeyUsage
	// AllowHostnames permits DNS and IP SANs (servers, gateways). Client
	// certificates carry the SPIFFE ID only.
	AllowHostnames bool
	// OCSPNoCheck adds id-pkix-ocsp-nocheck (delegated OCSP responders).
	OCSPNoCheck bool
}

// The built-in profiles; lifetimes are overridden from the config.
var (
	ClientProfile  = Profile{Name: "client", Lifetime: DefaultClientLifetime, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	ServerProfile  = Profile{Name: "server", Lifetime: DefaultServerLifetime, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, AllowHostnames: true}
	GatewayProfile = Profile{Name: "gateway", Lifetime: DefaultClientLifetime, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, AllowHostnames: true}
)

// Request is a checked request to issue: the public key the CSR proved
// possession of, and the identity it may have.
type Request struct {
	PublicKey   crypto.PublicKey
	Identity    identity.ID
	DNSNames    []string
	IPAddresses []net.IP
}

// Issuer signs leaf certificates with the intermediate. It is pure: no
// store, no network; time comes from its clock.
type Issuer struct {
	cert        *x509.Certificate
	key         crypto.Signer
	trustDomain string
	clock       clock.Clock
	// Where the status of its leaves and its own certificate are
	// published, put into every leaf; empty for none. Each issuer has its
	// own CRL and certificate URL (URLs.CRL, URLs.CACert); the OCSP
	// responder is shared and tells issuers apart by the request.
	CRLURL    string
	OCSPURL   string
	IssuerURL string
	// sigAlg is the signature algorithm of its first leaf, parsed; later
	// leaves are built from their template (leafFromTemplate).
	sigAlg atomic.Pointer[signatureAlgorithm]
	// exts are the extensions its leaves of each profile share, encoded.
	exts extCache
}

// NewIssuer checks that key belongs to the intermediate cert and returns an
// issuer for identities in trustDomain.
func NewIssuer(cert *x509.Certificate, key crypto.Signer, trustDomain string, clk clock.Clock) (*Issuer, error) {
	if !cert.IsCA {
		return nil, errors.New("ca: issuer certificate is not a CA")
	}
	if err := checkKeyPair(cert, key); err != nil {
		return nil, err
	}
	return &Issuer{cert: cert, key: key, trustDomain: trustDomain, clock: clk}, nil
}

// Certificate returns the intermediate certificate.
func (i *Issuer) Certificate() *x509.Certificate { return i.cert }

// KeyID is the issuer's key identifier in hex: what its leaves carry as
// authority key identifier and the store records as their issuer.
func (i *Issuer) KeyID() string { return KeyID(i.cert) }

// KeyID is the lowercase hex subject key identifier of a CA certificate.
func KeyID(c *x509.Certificate) string { return hex.EncodeToString(c.SubjectKeyId) }

// Prepared is a request that passed every issuance check, bound to one
// issuer. It can be issued once: a second Issue fails. Only Prepare makes
// one, so signing something that was not checked cannot be written.
type Prepared struct {
	issuer *Issuer
	tmpl   *x509.Certificate
	pub    crypto.PublicKey
	keyTyp keytype.Type
	used   atomic.Bool
}

// KeyType is the type of the key being certified.
func (p *Prepared) KeyType() keytype.Type { return p.keyTyp }

// Errors of Prepare that callers map to a client error.
var (
	ErrIdentity = errors.New("ca: identity not allowed")
	ErrProfile  = errors.New("ca: request does not fit the profile")
)

// Prepare checks r against the issuer's policy and the profile and builds the
// certificate to sign.
func (i *Issuer) Prepare(r Request, p Profile) (*Prepared, error) {
	kt, err := keytype.Of(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if r.Identity.IsZero() {
		return nil, fmt.Errorf("%w: no identity", ErrIdentity)
	}
	if !r.Identity.MemberOf(i.trustDomain) {
		return nil, fmt.Errorf("%w: %s is outside trust domain %q", ErrIdentity, r.Identity, i.trustDomain)
	}
	if !p.AllowHostnames && (len(r.DNSNames) > 0 || len(r.IPAddresses) > 0) {
		return nil, fmt.Errorf("%w: profile %s allows no DNS or IP names", ErrProfile, p.Name)
	}
	if p.Lifetime <= 0 || len(p.ExtKeyUsage) == 0 {
		return nil, fmt.Errorf("%w: profile %q has no lifetime or key usage", ErrProfile, p.Name)
	}
	now := i.clock.Now()
	notAfter := now.Add(p.Lifetime)
	if notAfter.After(i.cert.NotAfter) {
		// A leaf never outlives the CA that signed it.
		notAfter = i.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, errors.New("ca: intermediate has expired")
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(r.PublicKey)
	if err != nil {
		return nil, err
	}
	// digitalSignature only, whatever the key: certgate's TLS (package
	// tlspolicy) negotiates ECDHE suites only, so no peer ever encrypts a
	// key to an RSA certificate, and keyEncipherment on a clientAuth
	// certificate is a defect (RFC 5246 section 7.4.6 signs, never
	// encrypts, with a client certificate).
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: r.Identity.Name()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           p.ExtKeyUsage,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{r.Identity.URL()},
		DNSNames:              r.DNSNames,
		IPAddresses:           r.IPAddresses,
		SubjectKeyId:          ski,
		AuthorityKeyId:        i.cert.SubjectKeyId,
	}
	if p.OCSPNoCheck {
		// A delegated OCSP responder is not checked for revocation
		// (id-pkix-ocsp-nocheck), so it names no CRL or OCSP responder:
		// RFC 6960 section 4.2.2.2.1 says such a certificate SHOULD NOT.
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ocspNoCheck)
		setDistribution(tmpl, "", "", i.IssuerURL)
	} else {
		setDistribution(tmpl, i.CRLURL, i.OCSPURL, i.IssuerURL)
	}
	return &Prepared{issuer: i, tmpl: tmpl, pub: r.PublicKey, keyTyp: kt}, nil
}

// ErrReused is returned when a Prepared value is issued twice.
var ErrReused = errors.New("ca: prepared certificate already issued")

// Issue signs p. It fails if p was already issued or belongs to another issuer.
func (i *Issuer) Issue(p *Prepared) (*x509.Certificate, error) {
	if p == nil || p.issuer != i {
		return nil, errors.New("ca: prepared by another issuer")
	}
	if !p.used.CompareAndSwap(false, true) {
		return nil, ErrReused
	}
	der, err := createCertificate(p.tmpl, i.cert, p.pub, i.key, &i.exts)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	if sa := i.sigAlg.Load(); sa != nil {
		if cert, ok := leafFromTemplate(der, p.tmpl, i.cert, p.pub, sa); ok {
			return cert, nil
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse what was signed: %w", err)
	}
	if sa, ok := signatureAlgorithmOf(cert); ok {
		i.sigAlg.Store(sa)
	}
	return cert, nil
}

// Fingerprint is the lowercase hex SHA-256 of a certificate's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certgate/certgate/internal/identity"
)

// Default lifetimes.
const (
	DefaultRootLifetime         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateLifetime = 365 * 24 * time.Hour
	DefaultClientLifetime       = 24 * time.Hour
	DefaultServerLifetime       = 7 * 24 * time.Hour
)

// backdate is subtracted from every NotBefore so a relying party whose clock
// is a little behind ours still accepts a certificate fresh off the press.
const backdate = time.Minute

// serialBytes is the size of a serial number: 20 bytes is RFC 5280's maximum,
// and with the top bit cleared (serials are positive) it leaves 159 random bits,
// well above the 64 the CA/B Forum asks for and the 128 certgate promises.
const serialBytes = 20

// NewSerial returns a random positive serial number.
func NewSerial() (*big.Int, error) {
	b := make([]byte, serialBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("ca: serial: %w", err)
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		// Keep the encoding at full length so serials have a stable size.
		b[0] = 0x40
	}
	return new(big.Int).SetBytes(b), nil
}

// SerialHex is the canonical text form of a serial used by the store, the
// logs and the API: lowercase hex without leading zeros.
func SerialHex(n *big.Int) string { return n.Text(16) }

// subjectKeyID computes the key identifier from the public key as RFC 5280
// section 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bit string. It is
// an identifier, not a security function, which is why SHA-1 is fine here.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	if key, _, ok := publicKeyBytes(pub); ok {
		// The same bytes, without encoding/asn1's reflection per leaf.
		sum := sha1.Sum(key)
		return sum[:], nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("ca: public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// RootOptions describes a new root.
type RootOptions struct {
	TrustDomain string
	Key         crypto.Signer
	Now         time.Time
	Lifetime    time.Duration // DefaultRootLifetime if zero
	// Generation numbers the root (1 for the first): the second and later
	// roots have it in their name, so that no two roots of one trust
	// domain share a subject and path building never confuses them.
	Generation int
}

// rootPathLen is the path length of a root: two CA certificates may follow
// it, the intermediate and, during a root rotation, the cross-certificate
// of the next root that old clients build their chain through
// (leaf <- intermediate <- next root signed by this root <- this root).
// crypto/x509 counts every CA certificate under the root, self-issued or
// not, so with one the cross-signed chain would not verify.
const rootPathLen = 2

// CreateRoot makes a self-signed root: path length 2 (one intermediate
// level, plus a cross-certificate during a root rotation), and a critical
// name constraint (RFC 5280 section 4.2.1.10) that limits URI SANs beneath
// it to the trust domain, so even a compromised intermediate cannot mint
// identities of another trust domain that verifiers of this root accept.
func CreateRoot(o RootOptions) (*x509.Certificate, error) {
	if err := identity.ValidateTrustDomain(o.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultRootLifetime
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(o.Key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: "certgate root CA " + o.TrustDomain + generationSuffix(o.Generation), Organization: []string{"certgate"}},
		NotBefore:                   o.Now.Add(-backdate),
		NotAfter:                    o.Now.Add(o.Lifetime),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  rootPathLen,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:                ski,
		PermittedURIDomains:         []string{o.TrustDomain},
		PermittedDNSDomainsCritical: true, // marks the whole extension critical
	}
	return sign(tmpl, tmpl, o.Key.Public(), o.Key)
}

// generationSuffix names the second and later generations of a CA.
func generationSuffix(g int) string {
	if g < 2 {
		return ""
	}
	return fmt.Sprintf(" G%d", g)
}

// CrossOptions describes a cross-certificate: Subject's name and key,
// certified by Issuer, so that a client trusting Issuer verifies chains
// that end at Subject.
type CrossOptions struct {
	Subject   *x509.Certificate // the root whose key is certified
	Issuer    *x509.Certificate // the root that certifies it
	IssuerKey crypto.Signer
	Now       time.Time
	// CRLURL and IssuerURL are the issuer root's CRL and certificate, for
	// the distribution point and authority information access.
	CRLURL, IssuerURL string
}

// CreateCross makes a cross-certificate: the subject root's name, key and
// name constraints under the issuer root, path length 1 (it stands where
// an intermediate's issuer does), valid while both roots are.
func CreateCross(o CrossOptions) (*x509.Certificate, error) {
	if !o.Subject.IsCA || !o.Issuer.IsCA {
		return nil, errors.New("ca: cross-certificate between certificates that are not both CAs")
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := o.Now.Add(-backdate), o.Subject.NotAfter
	if o.Issuer.NotAfter.Before(notAfter) {
		notAfter = o.Issuer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		RawSubject:                  o.Subject.RawSubject,
		NotBefore:                   notBefore,
		NotAfter:                    notAfter,
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  1,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:                o.Subject.SubjectKeyId,
		PermittedURIDomains:         o.Subject.PermittedURIDomains,
		PermittedDNSDomainsCritical: len(o.Subject.PermittedURIDomains) > 0,
	}
	setDistribution(tmpl, o.CRLURL, "", o.IssuerURL)
	return sign(tmpl, o.Issuer, o.Subject.PublicKey, o.IssuerKey)
}

// setDistribution puts where status and the issuer's certificate are
// published into tmpl; empty URLs are left out.
func setDistribution(tmpl *x509.Certificate, crl, ocsp, issuer string) {
	if crl != "" {
		tmpl.CRLDistributionPoints = []string{crl}
	}
	if ocsp != "" {
		tmpl.OCSPServer = []string{ocsp}
	}
	if issuer != "" {
		tmpl.IssuingCertificateURL = []string{issuer}
	}
}

// IntermediateOptions describes a new online intermediate.
type IntermediateOptions struct {
	Root     *x509.Certificate
	RootKey  crypto.Signer
	Key      crypto.Signer // the intermediate's own key
	Now      time.Time
	Lifetime time.Duration // DefaultIntermediateLifetime if zero; capped at the root's expiry
	// Generation numbers the intermediate; see RootOptions.Generation.
	Generation int
	// CRLURL and IssuerURL are the root's CRL and certificate, for the
	// distribution point (so verifiers that check every CRL of the chain,
	// openssl verify -crl_check_all, can check this one) and the authority
	// information access.
	CRLURL, IssuerURL string
}

// CreateIntermediate makes the online signing CA: path length 0 (it signs
// leaves only).
func CreateIntermediate(o IntermediateOptions) (*x509.Certificate, error) {
	if o.Lifetime == 0 {
		o.Lifetime = DefaultIntermediateLifetime
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(o.Key.Public())
	if err != nil {
		return nil, err
	}
	notAfter := o.Now.Add(o.Lifetime)
	if notAfter.After(o.Root.NotAfter) {
		notAfter = o.Root.NotAfter
	}
	td := ""
	if len(o.Root.PermittedURIDomains) > 0 {
		td = " " + o.Root.PermittedURIDomains[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "certgate intermediate CA" + td + generationSuffix(o.Generation), Organization: []string{"certgate"}},
		NotBefore:             o.Now.Add(-backdate),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}
	setDistribution(tmpl, o.CRLURL, "", o.IssuerURL)
	return sign(tmpl, o.Root, o.Key.Public(), o.RootKey)
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse what was signed: %w", err)
	}
	return cert, nil
}

// ErrKeyMismatch is returned when a CA key does not belong to its certificate.
var ErrKeyMismatch = errors.New("ca: private key does not match certificate")

// checkKeyPair reports whether key is the private key of cert.
func checkKeyPair(cert *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(cert.PublicKey) {
		return ErrKeyMismatch
	}
	return nil
}

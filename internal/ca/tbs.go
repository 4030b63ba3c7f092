package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/internal/keytype"
)

// createCertificate returns what x509.CreateCertificate(rand.Reader, tmpl,
// parent, pub, key) returns. For the leaves Prepare makes it encodes the
// TBSCertificate itself with cryptobyte: encoding/asn1's reflection was
// about a tenth of the server's CPU per enrollment. The cryptography is the
// standard library's: crypto.SignMessage with the options CreateCertificate
// uses, then the same check of the signature against the issuer's key
// before anything is returned. Every template of another shape goes to
// x509.CreateCertificate unchanged. TestCreateCertificateDifferential
// holds the two byte for byte. cache, which may be nil, keeps the
// extensions that repeat from one leaf to the next.
func createCertificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer, cache *extCache) ([]byte, error) {
	sa, ok := signingAlgorithm(key.Public())
	if !ok || !parentMatches(parent, key) {
		return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	}
	tbs, ok := marshalTBS(tmpl, parent, pub, sa.der, cache)
	if !ok {
		return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	}
	sig, err := crypto.SignMessage(key, rand.Reader, tbs, sa.hash)
	if err != nil {
		return nil, err
	}
	// The check CreateCertificate makes of its own signature (a broken
	// signer, an HSM answering for another key, a fault while signing),
	// with its error text so both paths fail alike.
	if err := parent.CheckSignature(sa.alg, tbs, sig); err != nil {
		return nil, fmt.Errorf("x509: signature returned by signer is invalid: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(sa.der)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// signing is the algorithm CreateCertificate picks for an issuer key when
// the template names none, and its AlgorithmIdentifier.
type signing struct {
	alg  x509.SignatureAlgorithm
	hash crypto.Hash // 0 for Ed25519, which signs the message itself
	der  []byte
}

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384        = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidRSA         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

	// AlgorithmIdentifiers as crypto/x509 writes them: RSA with a NULL
	// parameter (RFC 3279 section 2.2.1), ECDSA and Ed25519 without
	// (RFC 5758 section 3.2, RFC 8410 section 3).
	signECDSAP256 = signing{x509.ECDSAWithSHA256, crypto.SHA256, algorithmID(oidECDSAWithSHA256, nil)}
	signECDSAP384 = signing{x509.ECDSAWithSHA384, crypto.SHA384, algorithmID(oidECDSAWithSHA384, nil)}
	signEd25519   = signing{x509.PureEd25519, 0, algorithmID(oidEd25519, nil)}
	signRSA       = signing{x509.SHA256WithRSA, crypto.SHA256, algorithmID(oidSHA256WithRSA, asn1.NullBytes)}

	spkiP256    = algorithmID(oidECPublicKey, mustMarshal(oidP256))
	spkiP384    = algorithmID(oidECPublicKey, mustMarshal(oidP384))
	spkiEd25519 = algorithmID(oidEd25519, nil)
	spkiRSA     = algorithmID(oidRSA, asn1.NullBytes)
)

func algorithmID(oid asn1.ObjectIdentifier, params []byte) []byte {
	return mustMarshal(pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.RawValue{FullBytes: params}})
}

func mustMarshal(v any) []byte {
	der, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return der
}

// signingAlgorithm is what x509.CreateCertificate signs with for the
// issuer key pub, for the key types certgate's CAs have; ok is false for
// any other.
func signingAlgorithm(pub crypto.PublicKey) (signing, bool) {
	kt, err := keytype.Of(pub)
	if err != nil {
		return signing{}, false
	}
	switch kt {
	case keytype.ECDSAP256:
		return signECDSAP256, true
	case keytype.ECDSAP384:
		return signECDSAP384, true
	case keytype.Ed25519:
		return signEd25519, true
	case keytype.RSA2048, keytype.RSA3072, keytype.RSA4096:
		return signRSA, true
	}
	return signing{}, false
}

// parentMatches is CreateCertificate's check that key is the parent's.
func parentMatches(parent *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && parent.PublicKey != nil && pub.Equal(parent.PublicKey)
}

// publicKeyBytes is the subjectPublicKey BIT STRING's content for pub and
// the AlgorithmIdentifier before it, as crypto/x509 writes them.
func publicKeyBytes(pub crypto.PublicKey) (key, algID []byte, ok bool) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			algID = spkiP256
		case elliptic.P384():
			algID = spkiP384
		default:
			return nil, nil, false
		}
		key, err := k.Bytes()
		return key, algID, err == nil
	case ed25519.PublicKey:
		return k, spkiEd25519, true
	case *rsa.PublicKey:
		if k.N == nil || k.N.Sign() <= 0 {
			return nil, nil, false
		}
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // RSAPublicKey, RFC 8017 A.1.1
			b.AddASN1BigInt(k.N)
			b.AddASN1Int64(int64(k.E))
		})
		key, err := b.Bytes()
		return key, spkiRSA, err == nil
	}
	return nil, nil, false
}

// The extensions crypto/x509 writes from template fields.
var (
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtBasicConstr    = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtSubjectKeyID   = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtAIA            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDP          = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAIAOCSP           = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAIAIssuers        = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
)

// extKeyUsageOIDs are the extended key usages certgate's profiles use.
var extKeyUsageOIDs = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
	x509.ExtKeyUsageServerAuth:  {1, 3, 6, 1, 5, 5, 7, 3, 1},
	x509.ExtKeyUsageClientAuth:  {1, 3, 6, 1, 5, 5, 7, 3, 2},
	x509.ExtKeyUsageOCSPSigning: {1, 3, 6, 1, 5, 5, 7, 3, 9},
}

// leafShape reports whether tmpl uses only the template fields marshalTBS
// encodes: those Prepare sets. Everything else (CA certificates, policies,
// name constraints, e-mail names, a chosen signature algorithm, subject
// attributes other than the common name, an ExtraExtension that overrides
// a field's) is CreateCertificate's.
func leafShape(tmpl *x509.Certificate) bool {
	s := tmpl.Subject
	if tmpl.SerialNumber == nil || tmpl.SerialNumber.Sign() < 0 || tmpl.IsCA ||
		(tmpl.MaxPathLen != 0 && tmpl.MaxPathLen != -1) || tmpl.MaxPathLenZero ||
		tmpl.SignatureAlgorithm != x509.UnknownSignatureAlgorithm ||
		len(tmpl.EmailAddresses) > 0 || len(tmpl.UnknownExtKeyUsage) > 0 ||
		len(tmpl.Policies) > 0 || len(tmpl.PolicyIdentifiers) > 0 ||
		len(tmpl.PermittedDNSDomains) > 0 || len(tmpl.ExcludedDNSDomains) > 0 ||
		len(tmpl.PermittedIPRanges) > 0 || len(tmpl.ExcludedIPRanges) > 0 ||
		len(tmpl.PermittedEmailAddresses) > 0 || len(tmpl.ExcludedEmailAddresses) > 0 ||
		len(tmpl.PermittedURIDomains) > 0 || len(tmpl.ExcludedURIDomains) > 0 ||
		len(s.Country) > 0 || len(s.Province) > 0 || len(s.Locality) > 0 || len(s.StreetAddress) > 0 ||
		len(s.PostalCode) > 0 || len(s.Organization) > 0 || len(s.OrganizationalUnit) > 0 ||
		s.SerialNumber != "" || len(s.ExtraNames) > 0 {
		return false
	}
	for _, u := range tmpl.ExtKeyUsage {
		if _, ok := extKeyUsageOIDs[u]; !ok {
			return false
		}
	}
	for _, e := range tmpl.ExtraExtensions {
		// id-ce (key usages, basic constraints, key identifiers, names,
		// policies, name constraints, CRL distribution points) and the
		// authority information access: CreateCertificate then writes the
		// extra extension in place of the field's.
		if len(e.Id) >= 3 && e.Id[0] == 2 && e.Id[1] == 5 && e.Id[2] == 29 || e.Id.Equal(oidExtAIA) {
			return false
		}
	}
	for _, name := range tmpl.DNSNames {
		if !ascii(name) {
			return false
		}
	}
	return true
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// marshalTBS encodes the TBSCertificate that x509.CreateCertificate would
// sign for tmpl, parent and pub, whose signature AlgorithmIdentifier is
// sigAlg. ok is false when tmpl is not of leafShape, or when a value is one
// CreateCertificate refuses or writes otherwise (an unknown key type, a
// non-ASCII URI, a year outside 0-9999): the caller leaves it to
// CreateCertificate, which gives its answer.
func marshalTBS(tmpl, parent *x509.Certificate, pub crypto.PublicKey, sigAlg []byte, cache *extCache) ([]byte, bool) {
	if !leafShape(tmpl) || len(parent.RawSubject) == 0 {
		return nil, false
	}
	pubBytes, pubAlg, ok := publicKeyBytes(pub)
	if !ok {
		return nil, false
	}
	subject, ok := marshalSubject(tmpl)
	if !ok {
		return nil, false
	}
	issuer := parent.RawSubject
	aki := tmpl.AuthorityKeyId
	if !bytes.Equal(issuer, subject) && len(parent.SubjectKeyId) > 0 {
		aki = parent.SubjectKeyId
	}
	notBefore, notAfter := tmpl.NotBefore.UTC(), tmpl.NotAfter.UTC()
	if !validYear(notBefore) || !validYear(notAfter) {
		return nil, false
	}
	chunks, ok := cache.chunks(tmpl, aki)
	if !ok {
		return nil, false
	}
	uris := make([]string, len(tmpl.URIs))
	for i, u := range tmpl.URIs {
		if uris[i] = u.String(); !ascii(uris[i]) {
			return nil, false
		}
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, 1024))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2) // v3
		})
		b.AddASN1BigInt(tmpl.SerialNumber)
		b.AddBytes(sigAlg)
		b.AddBytes(issuer)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, notBefore)
			addTime(b, notAfter)
		})
		b.AddBytes(subject)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(pubAlg)
			b.AddASN1BitString(pubBytes)
		})
		// Extensions in buildCertExtensions' order, then ExtraExtensions;
		// those of the profile and the issuer encoded once (extChunks).
		ski, san := len(tmpl.SubjectKeyId) > 0, len(tmpl.DNSNames) > 0 || len(tmpl.IPAddresses) > 0 || len(uris) > 0
		if !ski && !san && len(chunks.beforeSKI)+len(chunks.beforeSAN)+len(chunks.afterSAN) == 0 {
			return // no extensions: the field is absent
		}
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(chunks.beforeSKI)
				if ski {
					addExtension(b, oidExtSubjectKeyID, false, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(tmpl.SubjectKeyId)
					})
				}
				b.AddBytes(chunks.beforeSAN)
				if san {
					// Critical when the subject is empty (RFC 5280 section 4.2.1.6).
					addExtension(b, oidExtSAN, len(subject) == 2, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, name := range tmpl.DNSNames {
								addTagged(b, 2, []byte(name))
							}
							for _, ip := range tmpl.IPAddresses {
								if ip4 := ip.To4(); ip4 != nil {
									ip = ip4
								}
								addTagged(b, 7, ip)
							}
							for _, uri := range uris {
								addTagged(b, 6, []byte(uri))
							}
						})
					})
				}
				b.AddBytes(chunks.afterSAN)
			})
		})
	})
	tbs, err := b.Bytes()
	return tbs, err == nil
}

// extChunks are the extensions of the leaves of one profile and issuer,
// encoded: those before the subject key identifier, those between it and
// the subject alternative name, and those after. Each leaf has its own
// key identifier and names; the rest is the profile's and the issuer's,
// and encoding it for every leaf was a third of marshalTBS's time. The
// template fields they were made from are kept to find them again.
type extChunks struct {
	keyUsage             x509.KeyUsage
	extKeyUsage          []x509.ExtKeyUsage
	basicConstraints     bool
	aki                  []byte
	ocsp, issuers, crlDP []string
	extra                []pkix.Extension
	beforeSKI, beforeSAN []byte
	afterSAN             []byte
}

// matches reports whether c was made from the same fields as tmpl's.
func (c *extChunks) matches(tmpl *x509.Certificate, aki []byte) bool {
	return c.keyUsage == tmpl.KeyUsage && slices.Equal(c.extKeyUsage, tmpl.ExtKeyUsage) &&
		c.basicConstraints == tmpl.BasicConstraintsValid && bytes.Equal(c.aki, aki) &&
		slices.Equal(c.ocsp, tmpl.OCSPServer) && slices.Equal(c.issuers, tmpl.IssuingCertificateURL) &&
		slices.Equal(c.crlDP, tmpl.CRLDistributionPoints) &&
		slices.EqualFunc(c.extra, tmpl.ExtraExtensions, func(a, b pkix.Extension) bool {
			return a.Id.Equal(b.Id) && a.Critical == b.Critical && bytes.Equal(a.Value, b.Value)
		})
}

// extCache holds the last few extChunks made: an issuer signs leaves of a
// handful of profiles.
type extCache struct {
	recent atomic.Pointer[[]*extChunks]
}

const extCacheSize = 8

// chunks returns tmpl's extChunks, from c if it has them (c may be nil);
// ok is false if they cannot be encoded.
func (c *extCache) chunks(tmpl *x509.Certificate, aki []byte) (*extChunks, bool) {
	if c != nil {
		if recent := c.recent.Load(); recent != nil {
			for _, e := range *recent {
				if e.matches(tmpl, aki) {
					return e, true
				}
			}
		}
	}
	e, ok := newExtChunks(tmpl, aki)
	if ok && c != nil {
		// Copy on write; of two leaves missing at once, one entry may be
		// lost, and is made again.
		next := []*extChunks{e}
		if recent := c.recent.Load(); recent != nil {
			next = append(next, (*recent)[:min(len(*recent), extCacheSize-1)]...)
		}
		c.recent.Store(&next)
	}
	return e, ok
}

// newExtChunks encodes tmpl's extensions other than the subject key
// identifier and alternative name, keeping copies of the fields they come
// from.
func newExtChunks(tmpl *x509.Certificate, aki []byte) (*extChunks, bool) {
	e := &extChunks{
		keyUsage: tmpl.KeyUsage, extKeyUsage: slices.Clone(tmpl.ExtKeyUsage), basicConstraints: tmpl.BasicConstraintsValid,
		aki: bytes.Clone(aki), ocsp: slices.Clone(tmpl.OCSPServer), issuers: slices.Clone(tmpl.IssuingCertificateURL),
		crlDP: slices.Clone(tmpl.CRLDistributionPoints), extra: slices.Clone(tmpl.ExtraExtensions),
	}
	for i := range e.extra {
		e.extra[i].Id, e.extra[i].Value = slices.Clone(e.extra[i].Id), bytes.Clone(e.extra[i].Value)
	}
	// Each chunk its own builder: an encoding error (an extra
	// extension's invalid OID) leaves the template to CreateCertificate.
	var beforeSKI, beforeSAN, afterSAN cryptobyte.Builder
	if tmpl.KeyUsage != 0 {
		addExtension(&beforeSKI, oidExtKeyUsage, true, func(b *cryptobyte.Builder) { addKeyUsage(b, tmpl.KeyUsage) })
	}
	if len(tmpl.ExtKeyUsage) > 0 {
		addExtension(&beforeSKI, oidExtExtKeyUsage, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, u := range tmpl.ExtKeyUsage {
					b.AddASN1ObjectIdentifier(extKeyUsageOIDs[u])
				}
			})
		})
	}
	if tmpl.BasicConstraintsValid {
		// cA FALSE and no pathLenConstraint are both DEFAULT: empty.
		addExtension(&beforeSKI, oidExtBasicConstr, true, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
		})
	}
	if len(aki) > 0 {
		addExtension(&beforeSAN, oidExtAuthorityKeyID, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(aki) })
			})
		})
	}
	if len(tmpl.OCSPServer) > 0 || len(tmpl.IssuingCertificateURL) > 0 {
		addExtension(&beforeSAN, oidExtAIA, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addAccess(b, oidAIAOCSP, tmpl.OCSPServer)
				addAccess(b, oidAIAIssuers, tmpl.IssuingCertificateURL)
			})
		})
	}
	if len(tmpl.CRLDistributionPoints) > 0 {
		addExtension(&afterSAN, oidExtCRLDP, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, url := range tmpl.CRLDistributionPoints {
					// DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier } } }
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								addTagged(b, 6, []byte(url))
							})
						})
					})
				}
			})
		})
	}
	for _, x := range tmpl.ExtraExtensions {
		addExtension(&afterSAN, x.Id, x.Critical, func(b *cryptobyte.Builder) { b.AddBytes(x.Value) })
	}
	var err1, err2, err3 error
	e.beforeSKI, err1 = beforeSKI.Bytes()
	e.beforeSAN, err2 = beforeSAN.Bytes()
	e.afterSAN, err3 = afterSAN.Bytes()
	return e, err1 == nil && err2 == nil && err3 == nil
}

// marshalSubject is the template's subject as CreateCertificate writes it:
// RawSubject if set, else the common name alone (leafShape allows no other
// attribute), as a PrintableString when every character allows (asterisk
// and ampersand do not) and a UTF8String otherwise, as encoding/asn1
// decides. ok is false for a name that is not UTF-8, which
// CreateCertificate refuses.
func marshalSubject(tmpl *x509.Certificate) ([]byte, bool) {
	if len(tmpl.RawSubject) > 0 {
		return tmpl.RawSubject, true
	}
	cn := tmpl.Subject.CommonName
	if cn == "" {
		return []byte{0x30, 0}, true
	}
	tag := cbasn1.PrintableString
	for i := 0; i < len(cn); i++ {
		if !printable(cn[i]) {
			if !utf8.ValidString(cn) {
				return nil, false
			}
			tag = cbasn1.UTF8String
			break
		}
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 16+len(cn)))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidCommonName)
				b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(cn)) })
			})
		})
	})
	der, err := b.Bytes()
	return der, err == nil
}

// printable is encoding/asn1's PrintableString alphabet when it marshals a
// string it was not told the type of.
func printable(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		'\'' <= c && c <= ')' || '+' <= c && c <= '/' || c == ' ' || c == ':' || c == '=' || c == '?'
}

// validYear is the range GeneralizedTime can write; encoding/asn1 refuses
// other years.
func validYear(t time.Time) bool { return t.Year() >= 0 && t.Year() <= 9999 }

// addTime writes t (UTC) as encoding/asn1 does: UTCTime for 1950 through
// 2049 (RFC 5280 section 4.1.2.5), GeneralizedTime otherwise.
func addTime(b *cryptobyte.Builder, t time.Time) {
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

// addExtension writes an Extension; critical is DEFAULT FALSE, so written
// only when true.
func addExtension(b *cryptobyte.Builder, id asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// addKeyUsage writes the KeyUsage BIT STRING as crypto/x509 does: bit 0
// first, the usage's two low bytes (one when the second is zero), the
// trailing zero bits of the last byte unused (none when it is all zero).
func addKeyUsage(b *cryptobyte.Builder, ku x509.KeyUsage) {
	a := []byte{bits.Reverse8(byte(ku)), bits.Reverse8(byte(ku >> 8))}
	if a[1] == 0 {
		a = a[:1]
	}
	b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(bits.TrailingZeros8(a[len(a)-1]) % 8))
		b.AddBytes(a)
	})
}

// addAccess writes AccessDescriptions of one method, each location a
// uniformResourceIdentifier.
func addAccess(b *cryptobyte.Builder, method asn1.ObjectIdentifier, urls []string) {
	for _, u := range urls {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(method)
			addTagged(b, 6, []byte(u))
		})
	}
}

// addTagged writes a context-specific primitive [tag] IMPLICIT value: a
// GeneralName.
func addTagged(b *cryptobyte.Builder, tag uint8, v []byte) {
	b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signatureAlgorithm is what an issuer's first certificate, parsed, showed
// of its signatures: the algorithm and its AlgorithmIdentifier's DER.
type signatureAlgorithm struct {
	alg x509.SignatureAlgorithm
	der []byte
}

// signatureAlgorithmOf returns the signature algorithm of cert, parsed from
// its DER.
func signatureAlgorithmOf(cert *x509.Certificate) (*signatureAlgorithm, bool) {
	in := cryptobyte.String(cert.Raw)
	var c, algID cryptobyte.String
	if !in.ReadASN1(&c, cbasn1.SEQUENCE) || !c.SkipASN1(cbasn1.SEQUENCE) || !c.ReadASN1Element(&algID, cbasn1.SEQUENCE) {
		return nil, false
	}
	return &signatureAlgorithm{alg: cert.SignatureAlgorithm, der: bytes.Clone(algID)}, true
}

// leafFromTemplate returns the certificate that x509.ParseCertificate would
// return for der, which x509.CreateCertificate has just made from tmpl,
// signed by parent, whose signatures are sigAlg: the raw parts are cut
// from der, the rest is taken from the template in the form the parser
// gives, so the certificate just signed is not parsed again (about 10 µs
// of an enrollment). Only for the templates Prepare makes (no
// ExtraExtensions, policies, name constraints or subject attributes other
// than the common name); TestLeafFromTemplate compares it with the
// parser's result field by field. ok is false when der or tmpl is not of
// that shape, or der's signature algorithm is not sigAlg's: the caller
// parses instead.
func leafFromTemplate(der []byte, tmpl, parent *x509.Certificate, pub any, sigAlg *signatureAlgorithm) (*x509.Certificate, bool) {
	var pubAlg x509.PublicKeyAlgorithm
	switch pub.(type) {
	case *ecdsa.PublicKey:
		pubAlg = x509.ECDSA
	case ed25519.PublicKey:
		pubAlg = x509.Ed25519
	case *rsa.PublicKey:
		pubAlg = x509.RSA
	default:
		return nil, false
	}
	if len(tmpl.ExtraExtensions) > 0 || len(tmpl.Policies) > 0 || len(tmpl.PolicyIdentifiers) > 0 || tmpl.IsCA {
		return nil, false
	}
	c := &x509.Certificate{Raw: der}
	in := cryptobyte.String(der)
	var cert, tbs, algID, rawTBS cryptobyte.String
	var sigBits asn1.BitString
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() ||
		!cert.ReadASN1Element(&rawTBS, cbasn1.SEQUENCE) ||
		!cert.ReadASN1Element(&algID, cbasn1.SEQUENCE) || !bytes.Equal(algID, sigAlg.der) ||
		!cert.ReadASN1BitString(&sigBits) || !cert.Empty() {
		return nil, false
	}
	c.RawTBSCertificate = rawTBS
	c.Signature = sigBits.RightAlign()
	tbs = rawTBS
	var rawIssuer, rawSubject, rawSPKI, exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipASN1(cbasn1.INTEGER) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&rawIssuer, cbasn1.SEQUENCE) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&rawSubject, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&rawSPKI, cbasn1.SEQUENCE) ||
		!tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(3).Constructed().ContextSpecific()) ||
		!tbs.Empty() || !hasExts || !exts.ReadASN1(&exts, cbasn1.SEQUENCE) {
		return nil, false
	}
	c.RawIssuer, c.RawSubject, c.RawSubjectPublicKeyInfo = rawIssuer, rawSubject, rawSPKI
	c.Extensions = make([]pkix.Extension, 0, 10) // Prepare's leaves have 6-9
	for !exts.Empty() {
		var ext cryptobyte.String
		var e pkix.Extension
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.Id) {
			return nil, false
		}
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&e.Critical) {
			return nil, false
		}
		var v cryptobyte.String
		if !ext.ReadASN1(&v, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, false
		}
		e.Value = v
		c.Extensions = append(c.Extensions, e)
	}
	c.Version = 3
	c.SignatureAlgorithm = sigAlg.alg
	c.PublicKeyAlgorithm = pubAlg
	c.PublicKey = pub
	c.SerialNumber = tmpl.SerialNumber
	c.Issuer = cloneName(parent.Subject)
	c.Subject = tmpl.Subject
	if c.Subject.CommonName != "" {
		c.Subject.Names = []pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: c.Subject.CommonName}}
	}
	if len(tmpl.Subject.Names) > 0 || len(tmpl.Subject.ExtraNames) > 0 || len(tmpl.Subject.Organization) > 0 ||
		len(tmpl.Subject.Country) > 0 || len(tmpl.Subject.OrganizationalUnit) > 0 || tmpl.Subject.SerialNumber != "" ||
		len(tmpl.Subject.Locality) > 0 || len(tmpl.Subject.Province) > 0 || len(tmpl.Subject.StreetAddress) > 0 || len(tmpl.Subject.PostalCode) > 0 {
		return nil, false
	}
	c.NotBefore = asn1Time(tmpl.NotBefore)
	c.NotAfter = asn1Time(tmpl.NotAfter)
	c.KeyUsage = tmpl.KeyUsage
	c.ExtKeyUsage = slices.Clone(tmpl.ExtKeyUsage) // the profile's
	c.BasicConstraintsValid = tmpl.BasicConstraintsValid
	c.MaxPathLen = -1
	c.SubjectKeyId = tmpl.SubjectKeyId
	c.AuthorityKeyId = slices.Clone(tmpl.AuthorityKeyId) // the issuer's
	c.OCSPServer = tmpl.OCSPServer
	c.IssuingCertificateURL = tmpl.IssuingCertificateURL
	c.CRLDistributionPoints = tmpl.CRLDistributionPoints
	c.DNSNames = tmpl.DNSNames
	c.URIs = tmpl.URIs
	for _, ip := range tmpl.IPAddresses {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		c.IPAddresses = append(c.IPAddresses, net.IP(append([]byte(nil), ip...)))
	}
	return c, true
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// asn1Time is t as a certificate's validity holds it: UTC, whole seconds.
func asn1Time(t time.Time) time.Time {
	return time.Unix(t.Unix(), 0).UTC()
}

// cloneName copies n's slices: a parsed certificate shares nothing with
// another.
func cloneName(n pkix.Name) pkix.Name {
	n.Country, n.Organization, n.OrganizationalUnit = slices.Clone(n.Country), slices.Clone(n.Organization), slices.Clone(n.OrganizationalUnit)
	n.Locality, n.Province, n.StreetAddress, n.PostalCode = slices.Clone(n.Locality), slices.Clone(n.Province), slices.Clone(n.StreetAddress), slices.Clone(n.PostalCode)
	n.Names, n.ExtraNames = slices.Clone(n.Names), slices.Clone(n.ExtraNames)
	return n
}

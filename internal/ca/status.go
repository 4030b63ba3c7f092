package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// DefaultOCSPSignerLifetime is the life of a delegated OCSP responder
// certificate. It carries id-pkix-ocsp-nocheck, so nobody checks whether it
// was revoked: its short life is what bounds the use of a stolen responder
// key. The server renews it at two thirds.
const DefaultOCSPSignerLifetime = 24 * time.Hour

// OCSPSigningProfile is the delegated OCSP responder certificate of RFC 6960
// section 4.2.2.2: issued by the intermediate, extended key usage
// id-kp-OCSPSigning only, and the nocheck extension.
var OCSPSigningProfile = Profile{
	Name:        "ocsp-signer",
	Lifetime:    DefaultOCSPSignerLifetime,
	ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
	OCSPNoCheck: true,
}

// ocspNoCheck is id-pkix-ocsp-nocheck (RFC 6960 section 4.2.2.2.1), whose
// value is an ASN.1 NULL.
var ocspNoCheck = pkix.Extension{
	Id:    asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5},
	Value: []byte{0x05, 0x00},
}

// SignCRL signs tmpl with the intermediate and returns the DER CRL. The
// intermediate's key never leaves the issuer; the caller decides what the
// CRL lists.
func (i *Issuer) SignCRL(tmpl *x509.RevocationList) ([]byte, error) {
	if tmpl == nil {
		return nil, errors.New("ca: no CRL to sign")
	}
	if tmpl.NextUpdate.After(i.cert.NotAfter) {
		// A CRL never claims to be current past the life of its issuer.
		t := *tmpl
		t.NextUpdate = i.cert.NotAfter
		tmpl = &t
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, i.cert, i.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign CRL: %w", err)
	}
	return der, nil
}

// KeyInSoftware reports whether the issuer's key is a key of this process
// (decrypted from a file or the store) rather than a handle to a key in a
// device (a PKCS#11 token). A key in a device never leaves it, so what
// signs status for its certificates must be that key too: see SignOCSP.
func (i *Issuer) KeyInSoftware() bool {
	switch i.key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return true
	}
	return false
}

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// SignOCSP signs the DER ResponseData of an OCSP response as the CA itself
// (RFC 6960 section 4.2.2.2: the CA that issued the certificate may sign
// its status), with the algorithm its key calls for (RFC 5758, RFC 8017,
// RFC 8410). It returns the signature and its algorithm identifier. Only
// ResponseData is accepted, so the key signs nothing that could pass for a
// certificate or a CRL.
func (i *Issuer) SignOCSP(responseData []byte) ([]byte, pkix.AlgorithmIdentifier, error) {
	var rd struct {
		Version     int `asn1:"optional,explicit,default:0,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []asn1.RawValue
		Extensions  []pkix.Extension `asn1:"optional,explicit,tag:1"`
	}
	rest, err := asn1.Unmarshal(responseData, &rd)
	if err != nil || len(rest) != 0 || rd.ResponderID.Class != asn1.ClassContextSpecific ||
		(rd.ResponderID.Tag != 1 && rd.ResponderID.Tag != 2) || len(rd.Responses) == 0 {
		return nil, pkix.AlgorithmIdentifier{}, errors.New("ca: sign OCSP: not one DER OCSP ResponseData")
	}
	var (
		alg    pkix.AlgorithmIdentifier
		digest []byte
		opts   crypto.SignerOpts
	)
	switch pub := i.key.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve.Params().BitSize > 256 {
			sum := sha512.Sum384(responseData)
			alg, digest, opts = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA384}, sum[:], crypto.SHA384
		} else {
			sum := sha256.Sum256(responseData)
			alg, digest, opts = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, sum[:], crypto.SHA256
		}
	case *rsa.PublicKey:
		sum := sha256.Sum256(responseData)
		alg, digest, opts = pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1.NullRawValue}, sum[:], crypto.SHA256
	case ed25519.PublicKey:
		alg, digest, opts = pkix.AlgorithmIdentifier{Algorithm: oidEd25519}, responseData, crypto.Hash(0)
	default:
		return nil, pkix.AlgorithmIdentifier{}, fmt.Errorf("ca: sign OCSP: %T keys are not supported", pub)
	}
	sig, err := i.key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, pkix.AlgorithmIdentifier{}, fmt.Errorf("ca: sign OCSP: %w", err)
	}
	return sig, alg, nil
}

package ca

import (
	"crypto/rand"
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

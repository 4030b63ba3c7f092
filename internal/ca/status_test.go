package ca

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/keytype"
)

// deviceKey stands for a key in a PKCS#11 token: a crypto.Signer that is
// not one of the standard library's private keys.
type deviceKey struct{ crypto.Signer }

// ocspResponseData is a minimal OCSP ResponseData (RFC 6960 section 4.2.1).
func ocspResponseData(t *testing.T) []byte {
	t.Helper()
	keyHash, _ := asn1.Marshal(make([]byte, 20))
	single, _ := asn1.Marshal(struct {
		CertID struct {
			Alg               pkix.AlgorithmIdentifier
			NameHash, KeyHash []byte
			Serial            *big.Int
		}
		Good       asn1.RawValue
		ThisUpdate time.Time `asn1:"generalized"`
	}{Good: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0}, ThisUpdate: time.Unix(1e9, 0).UTC()})
	der, err := asn1.Marshal(struct {
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []asn1.RawValue
	}{asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: keyHash}, time.Unix(1e9, 0).UTC(),
		[]asn1.RawValue{{FullBytes: single}}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestSignOCSP: an issuer whose key is in a device signs OCSP responses
// itself, with its key's algorithm, and signs nothing but a ResponseData
// (not a certificate's or a CRL's to-be-signed part).
func TestSignOCSP(t *testing.T) {
	algs := map[keytype.Type]x509.SignatureAlgorithm{
		keytype.ECDSAP256: x509.ECDSAWithSHA256, keytype.ECDSAP384: x509.ECDSAWithSHA384,
		keytype.RSA2048: x509.SHA256WithRSA, keytype.Ed25519: x509.PureEd25519,
	}
	for kt, alg := range algs {
		t.Run(string(kt), func(t *testing.T) {
			c := newTestCA(t, kt)
			if !c.issuer.KeyInSoftware() {
				t.Fatal("a software key is reported as a device key")
			}
			dev, err := NewIssuer(c.inter, deviceKey{c.issuer.key}, "example.org", c.clock)
			if err != nil {
				t.Fatal(err)
			}
			if dev.KeyInSoftware() {
				t.Fatal("a device key is reported as a software key")
			}
			data := ocspResponseData(t)
			sig, ai, err := dev.SignOCSP(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.inter.CheckSignature(alg, data, sig); err != nil {
				t.Fatalf("signature with %s: %v", alg, err)
			}
			wantOID := map[x509.SignatureAlgorithm]asn1.ObjectIdentifier{x509.ECDSAWithSHA256: oidECDSAWithSHA256,
				x509.ECDSAWithSHA384: oidECDSAWithSHA384, x509.SHA256WithRSA: oidSHA256WithRSA, x509.PureEd25519: oidEd25519}[alg]
			if !ai.Algorithm.Equal(wantOID) {
				t.Fatalf("algorithm %s, want %s", ai.Algorithm, wantOID)
			}
			leaf := c.issue(t, "spiffe://example.org/svc/a", ClientProfile)
			crl, err := c.issuer.SignCRL(&x509.RevocationList{Number: big.NewInt(1), ThisUpdate: c.clock.Now(), NextUpdate: c.clock.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			rl, _ := x509.ParseRevocationList(crl)
			for name, in := range map[string][]byte{
				"certificate": leaf.RawTBSCertificate, "CRL": rl.RawTBSRevocationList,
				"trailing data": append(append([]byte{}, data...), 0), "empty": nil, "garbage": []byte("not DER"),
			} {
				if _, _, err := dev.SignOCSP(in); err == nil || err.Error() != "ca: sign OCSP: not one DER OCSP ResponseData" {
					t.Errorf("%s: %v, want a refusal", name, err)
				}
			}
		})
	}
}

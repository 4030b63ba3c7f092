package csr

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/certgate/certgate/internal/keytype"
)

func FuzzParseAndCheck(f *testing.F) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.Ed25519, keytype.RSA2048} {
		good, err := Create(testKey(f, kt), billing)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good)
	}
	p256 := testKey(f, keytype.ECDSAP256)
	f.Add(makeCSR(f, p256, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "billing"},
		URIs:     uris(f, billing.String()),
		DNSNames: []string{"api.example.org"},
	}))
	f.Add(makeCSR(f, p256, &x509.CertificateRequest{URIs: uris(f, billing.String(), "spiffe://example.org/x")}))
	for _, name := range []string{"rsa-1024", "p-224", "rsa-512", "dsa-2048", "othername-san"} {
		f.Add(readFile(f, "testdata/"+name+".csr.pem"))
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseAndCheck(data, billing)
		if err != nil {
			if req.CSR != nil || req.PublicKey != nil || req.KeyType != "" || !req.Identity.IsZero() || req.DNSNames != nil || req.IPAddresses != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		// Whatever got through must be exactly what Check promises.
		c := req.CSR
		if req.Identity != billing || len(c.URIs) != 1 || c.URIs[0].String() != billing.String() {
			t.Fatalf("accepted identity %v, URIs %v", req.Identity, c.URIs)
		}
		if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 {
			t.Fatal("accepted extra SANs")
		}
		if kt, err := keytype.Of(req.PublicKey); err != nil || kt != req.KeyType {
			t.Fatalf("accepted key type %v (%v)", req.KeyType, err)
		}
		if err := c.CheckSignature(); err != nil {
			t.Fatalf("accepted a bad signature: %v", err)
		}
	})
}

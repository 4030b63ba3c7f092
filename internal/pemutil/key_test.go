package pemutil

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/keytype"
)

type equaler interface {
	Equal(crypto.PrivateKey) bool
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	for _, kt := range keytype.All {
		t.Run(string(kt), func(t *testing.T) {
			key := testKey(t, kt)
			data, err := EncodePrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
				t.Fatalf("not PKCS#8: %.40q", data)
			}
			got, err := ParsePrivateKey(data)
			if err != nil {
				t.Fatal(err)
			}
			if !got.(equaler).Equal(key) {
				t.Fatal("round trip changed the key")
			}
		})
	}
}

func TestParsePrivateKeyLegacy(t *testing.T) {
	ec := testKey(t, keytype.ECDSAP256).(*ecdsa.PrivateKey)
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(pemBlock("EC PRIVATE KEY", der))
	if err != nil || !got.(equaler).Equal(ec) {
		t.Fatalf("EC PRIVATE KEY: %v", err)
	}
	rk := testKey(t, keytype.RSA2048).(*rsa.PrivateKey)
	got, err = ParsePrivateKey(pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)))
	if err != nil || !got.(equaler).Equal(rk) {
		t.Fatalf("RSA PRIVATE KEY: %v", err)
	}
}

func TestParsePrivateKeyRefuses(t *testing.T) {
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xder, err := x509.MarshalPKCS8PrivateKey(x)
	if err != nil {
		t.Fatal(err)
	}
	key, err := EncodePrivateKey(testKey(t, keytype.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "pemutil: no PEM data found"},
		{"encrypted", buildEncrypted(t, []byte("x"), []byte("pw"), encOpts{}), "pemutil: private key is encrypted"},
		{"legacy encrypted", readFile(t, "testdata/legacy-proc-type.key.pem"), `pemutil: PEM block "RSA PRIVATE KEY" is encrypted the legacy way (Proc-Type header), which is not supported; convert it with openssl pkcs8 -topk8`},
		{"two keys", append(append([]byte{}, key...), key...), "pemutil: want one PRIVATE KEY block, found 2 blocks"},
		{"certificate", EncodeCertificates(selfSigned(t, "x")), `pemutil: unexpected PEM block "CERTIFICATE" (want PRIVATE KEY)`},
		{"X25519 cannot sign", pemBlock("PRIVATE KEY", xder), "pemutil: private key of type *ecdh.PrivateKey cannot sign"},
		{"not DER", pemBlock("PRIVATE KEY", []byte{0x30, 0x00}), "pemutil: private key: asn1: syntax error: sequence truncated"},
		{"EC not DER", pemBlock("EC PRIVATE KEY", []byte{0x30, 0x00}), "pemutil: private key: x509: failed to parse EC private key: asn1: syntax error: sequence truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got != nil {
				t.Error("returned a key with an error")
			}
		})
	}
	if _, err := ParsePrivateKey(buildEncrypted(t, []byte("x"), []byte("pw"), encOpts{})); !errors.Is(err, ErrEncrypted) {
		t.Errorf("errors.Is(err, ErrEncrypted) = false for %v", err)
	}
}

func TestEncodePrivateKeyRefusesUnknownType(t *testing.T) {
	_, err := EncodePrivateKey(fakeSigner{})
	want := "pemutil: x509: unknown key type while marshaling PKCS#8: pemutil.fakeSigner"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

type fakeSigner struct{ crypto.Signer }

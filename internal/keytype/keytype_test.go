package keytype

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

func TestGenerateAndOf(t *testing.T) {
	for _, kt := range All {
		if kt == RSA4096 && testing.Short() {
			continue
		}
		k, err := Generate(kt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Of(k.Public())
		if err != nil || got != kt {
			t.Fatalf("Of(Generate(%s)) = %s, %v", kt, got, err)
		}
	}
}

func TestOfRefuses(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for want, pub := range map[string]any{
		"unsupported key type: ECDSA curve P-224":                       &p224.PublicKey,
		"unsupported key type: ECDSA curve P-521":                       &p521.PublicKey,
		"unsupported key type: RSA 1024 bits (want 2048, 3072 or 4096)": &rsa1024.PublicKey,
		"unsupported key type: no public key":                           nil,
		"unsupported key type: string":                                  "x",
	} {
		if _, err := Of(pub); err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	}
	if _, err := Parse("rsa-1024"); err == nil || err.Error() != `unsupported key type "rsa-1024" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)` {
		t.Fatal(err)
	}
}

package devicekey_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/testenv"
)

// TestSoftHSM: keys made in a SoftHSM2 token sign, are found again by
// their URI, are sensitive and not extractable, and are gone once deleted.
func TestSoftHSM(t *testing.T) {
	token := testenv.SoftHSMToken(t, "devicekey")
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.RSA2048} {
		k, uri, err := devicekey.Generate(token, kt, "test "+string(kt))
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if got, _ := keytype.Of(k.Public()); got != kt {
			t.Fatalf("%s: made a %s", kt, got)
		}
		again, err := devicekey.Load(uri)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("hello"))
		if _, err := again.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			t.Fatalf("%s: sign: %v", kt, err)
		}
		if x, s, err := devicekey.Attributes(uri); err != nil || x || !s {
			t.Fatalf("%s: extractable %v sensitive %v %v", kt, x, s, err)
		}
		if tok, err := devicekey.TokenOf(uri); err != nil || !strings.HasPrefix(tok, "pkcs11:token=devicekey?") {
			t.Fatalf("TokenOf: %q %v", tok, err)
		}
		if err := devicekey.Delete(uri); err != nil {
			t.Fatal(err)
		}
		if _, err := devicekey.Load(uri); !errors.Is(err, devicekey.ErrNotFound) {
			t.Fatalf("%s after Delete: %v", kt, err)
		}
		if err := devicekey.Delete(uri); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
	}
	if _, _, err := devicekey.Generate(token, keytype.Ed25519, "x"); err == nil || err.Error() != "devicekey: key type ed25519 cannot be made in a PKCS#11 token (use ecdsa-p256, ecdsa-p384 or rsa-*)" {
		t.Fatalf("ed25519: %v", err)
	}
}

func TestURIRefusals(t *testing.T) {
	for uri, want := range map[string]string{
		"pkcs11:token=a?module-path=/m&pin-value=1":          "devicekey: pin-value would be written into the credentials directory with the URI; use pin-source=file:/path or env:NAME",
		"pkcs11:token=a;id=%01?module-path=/m&pin-source=/p": "devicekey: pkcs11:token=a;id=%01?module-path=/m&pin-source=/p names a key; give the token only (a new key is made in it)",
		"file:/key.pem": "devicekey: bad PKCS#11 URI: does not start with pkcs11:",
	} {
		if _, _, err := devicekey.Generate(uri, keytype.ECDSAP256, "x"); err == nil || err.Error() != want {
			t.Errorf("Generate(%q): %v\nwant %s", uri, err, want)
		}
	}
	if _, err := devicekey.Load("pkcs11:token=a?module-path=/m&pin-source=/p"); err == nil || err.Error() != "devicekey: pkcs11:token=a?module-path=/m&pin-source=/p names no key (id)" {
		t.Errorf("Load without id: %v", err)
	}
}

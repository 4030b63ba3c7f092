package cakey_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

func TestParseURI(t *testing.T) {
	u, err := cakey.ParseURI("pkcs11:token=certgate%20CA;object=root-1;id=%01%ff;type=private;slot-id=3?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "certgate CA" || u.Object != "root-1" || !bytes.Equal(u.ID, []byte{1, 0xff}) || u.Type != "private" ||
		u.SlotID == nil || *u.SlotID != 3 || u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PinSource != "file:/etc/certgate/pin" {
		t.Fatalf("parsed %+v", u)
	}
	// String and ParseURI agree.
	again, err := cakey.ParseURI(u.String())
	if err != nil || again.String() != u.String() {
		t.Fatalf("round trip: %q -> %q, %v", u.String(), again.String(), err)
	}
	if got := u.TokenURI().String(); got != "pkcs11:token=certgate%20CA;slot-id=3?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin" {
		t.Errorf("TokenURI = %s", got)
	}
	const prefix = "cakey: bad PKCS#11 URI: "
	for in, want := range map[string]string{
		"file:/x":                      "does not start with pkcs11:",
		"pkcs11:token=a?pin-source=/p": "no module-path (the PKCS#11 module to load, e.g. module-path=/usr/lib/softhsm/libsofthsm2.so)",
		"pkcs11:object=a?module-path=/m&pin-value=1":                     "no token, serial or slot-id names the token",
		"pkcs11:token=a?module-path=/m":                                  "no pin-source (e.g. pin-source=file:/etc/certgate/hsm-pin) or pin-value",
		"pkcs11:token=a;token=b?module-path=/m&pin-value=1":              `attribute "token" appears twice`,
		"pkcs11:tokn=a?module-path=/m&pin-value=1":                       `unknown attribute "tokn"`,
		"pkcs11:token=a?module-path=m.so&pin-value=1":                    `attribute "module-path": module-path "m.so" is not an absolute path`,
		"pkcs11:token=a?module-path=/m&pin-source=pin.txt":               `attribute "pin-source": pin-source "pin.txt" is not file:/path, /path or env:NAME`,
		"pkcs11:token=a?module-path=/m&module-name=softhsm2&pin-value=1": `attribute "module-name": module-name is not supported: give module-path, the module's absolute path`,
		"pkcs11:token=a%zz?module-path=/m&pin-value=1":                   `attribute "token": invalid URL escape "%zz"`,
		"pkcs11:token=a;type=public?module-path=/m&pin-value=1":          `attribute "type": type "public": a CA key is a private key`,
		"pkcs11:token=a;slot-id=-1?module-path=/m&pin-value=1":           `attribute "slot-id": slot-id "-1" is not a slot number`,
		"pkcs11:token?module-path=/m&pin-value=1":                        `attribute "token" is not name=value`,
		"pkcs11:token=a?module-path=/m&pin-value=1&pin-source=/p":        "both pin-source and pin-value",
		"pkcs11:" + strings.Repeat("a", 5000):                            "longer than 4096 bytes",
	} {
		_, err := cakey.ParseURI(in)
		if !errors.Is(err, cakey.ErrURI) || err.Error() != prefix+want {
			t.Errorf("ParseURI(%.60q) = %v\nwant %s", in, err, prefix+want)
		}
	}
}

func TestPIN(t *testing.T) {
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	os.WriteFile(pin, []byte("1234\n"), 0o600)
	t.Setenv("CERTGATE_TEST_PIN", "5678")
	for spec, want := range map[string]string{"pin-source=file:" + pin: "1234", "pin-source=" + pin: "1234",
		"pin-source=env:CERTGATE_TEST_PIN": "5678", "pin-value=9": "9"} {
		u, err := cakey.ParseURI("pkcs11:token=a?module-path=/m&" + spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := u.PIN(); err != nil || got != want {
			t.Errorf("%s: PIN = %q, %v", spec, got, err)
		}
	}
	u, _ := cakey.ParseURI("pkcs11:token=a?module-path=/m&pin-source=env:CERTGATE_TEST_NO_PIN")
	if _, err := u.PIN(); err == nil || err.Error() != "pkcs11: pin-source: $CERTGATE_TEST_NO_PIN is empty" {
		t.Errorf("empty env PIN: %v", err)
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=certgate;object=root-1;id=%01%ff;type=private?module-path=/usr/lib/x.so&pin-source=file:/p")
	f.Add("pkcs11:slot-id=0?module-path=/m&pin-value=%00")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := cakey.ParseURI(s)
		if err != nil {
			if !errors.Is(err, cakey.ErrURI) {
				t.Fatalf("error %v does not wrap ErrURI", err)
			}
			return
		}
		// What parses formats to a URI that parses to the same thing.
		again, err := cakey.ParseURI(u.String())
		if err != nil {
			t.Fatalf("ParseURI(%q) of String() of %q: %v", u.String(), s, err)
		}
		if again.String() != u.String() {
			t.Fatalf("not stable: %q -> %q", u.String(), again.String())
		}
	})
}

func signVerify(t *testing.T, k crypto.Signer) {
	t.Helper()
	d := sha256.Sum256([]byte("certgate"))
	sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, d[:], sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) == nil
	}
	if !ok {
		t.Fatalf("signature of a %T does not verify", k.Public())
	}
}

func TestSealedAndFile(t *testing.T) {
	ctx := context.Background()
	src := &cakey.Source{Dir: t.TempDir(), Passphrase: []byte("correct horse")}
	g, err := src.Generate(ctx, "", keytype.ECDSAP384, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if g.URI != "sealed:" || !bytes.Contains(g.Sealed, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatalf("generated %q, %.40q", g.URI, g.Sealed)
	}
	k, err := src.Key(ctx, store.CACert{KeyURI: g.URI, SealedKey: g.Sealed})
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, k)
	os.WriteFile(filepath.Join(src.Dir, "k.pem"), g.Sealed, 0o600)
	fk, err := src.Load(ctx, "file:k.pem", nil)
	if err != nil || !fk.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Fatalf("file key: %v", err)
	}
	wrong := &cakey.Source{Dir: src.Dir, Passphrase: []byte("wrong")}
	if _, err := wrong.Load(ctx, "sealed:", g.Sealed); err == nil || err.Error() != "cakey: sealed key: wrong passphrase" {
		t.Errorf("wrong passphrase: %v", err)
	}
	for uri, want := range map[string]string{
		"vault:x":    `cakey: key URI "vault:x" is not file:, sealed: or pkcs11:`,
		"sealed:":    "cakey: sealed key is empty",
		"file:nokey": "cakey: open " + filepath.Join(src.Dir, "nokey") + ": no such file or directory",
		"pkcs11:x=1": `cakey: bad PKCS#11 URI: unknown attribute "x"`,
	} {
		if _, err := wrong.Load(ctx, uri, nil); err == nil || err.Error() != want {
			t.Errorf("Load(%q) = %v, want %s", uri, err, want)
		}
	}
}

// TestSoftHSM generates keys of each type a token supports inside a real
// SoftHSM2 token, signs with them through the token, finds them again by
// their URI from a fresh source, checks the token says they are sensitive
// and not extractable, and that a second Generate with the same label
// returns the same key instead of making another.
func TestSoftHSM(t *testing.T) {
	if !cakey.PKCS11Supported {
		t.Skip("built without cgo")
	}
	ctx := context.Background()
	tokenURI := testenv.SoftHSMToken(t, "certgate-test")
	src := &cakey.Source{}
	defer src.Close()
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.RSA2048} {
		label := "certgate-" + string(kt)
		g, err := src.Generate(ctx, tokenURI, kt, label)
		if err != nil {
			t.Fatal(err)
		}
		if g.Sealed != nil || !strings.HasPrefix(g.URI, "pkcs11:token=certgate-test;object="+label+";id=%") || strings.Contains(g.URI, "246813") {
			t.Fatalf("key URI %s", g.URI)
		}
		if got, _ := keytype.Of(g.Signer.Public()); got != kt {
			t.Fatalf("key type %s, want %s", got, kt)
		}
		signVerify(t, g.Signer)
		extractable, sensitive, err := src.KeyAttributes(ctx, g.URI)
		if err != nil || extractable || !sensitive {
			t.Fatalf("CKA_EXTRACTABLE %v, CKA_SENSITIVE %v, %v; want false, true", extractable, sensitive, err)
		}
		again, err := src.Generate(ctx, tokenURI, kt, label)
		if err != nil || again.URI != g.URI {
			t.Fatalf("second Generate with the same label: %v, %s != %s", err, again.URI, g.URI)
		}
		fresh := &cakey.Source{}
		k, err := fresh.Load(ctx, g.URI, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(g.Signer.Public()) {
			t.Fatal("loaded another key")
		}
		signVerify(t, k)
		fresh.Close()
	}
	if _, err := src.Generate(ctx, tokenURI, keytype.Ed25519, "ed"); err == nil ||
		err.Error() != "cakey: key type ed25519 cannot be made in a PKCS#11 token (use ecdsa-p256, ecdsa-p384 or rsa-*)" {
		t.Errorf("Ed25519 in a token: %v", err)
	}
	// A wrong PIN is refused, and the error does not show it. (While a
	// session of this process is logged in, the token does not ask again.)
	src.Close()
	bad := strings.Replace(tokenURI, "pin-source=file:", "pin-value=999999&x=", 1)
	bad = bad[:strings.Index(bad, "&x=")]
	if _, err := (&cakey.Source{}).Generate(ctx, bad, keytype.ECDSAP256, "x"); err == nil || strings.Contains(err.Error(), "999999") ||
		!strings.Contains(err.Error(), "CKR_PIN_INCORRECT") {
		t.Errorf("wrong PIN: %v", err)
	}
}

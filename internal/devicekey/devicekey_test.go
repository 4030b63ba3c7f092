package devicekey_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestSWTPM: a key made in a TPM (swtpm) signs signatures crypto/ecdsa
// verifies, is found again by its URI, and the TPM reports it fixedTPM,
// fixedParent and sensitiveDataOrigin (TPM2_ReadPublic); another TPM
// cannot load it, and each refusal is exact.
func TestSWTPM(t *testing.T) {
	store := testenv.SWTPM(t)
	k, uri, err := devicekey.Generate(store, keytype.ECDSAP256, "unused")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, store+";public=") || !strings.Contains(uri, ";private=") {
		t.Fatalf("key URI %q", uri)
	}
	if got, _ := keytype.Of(k.Public()); got != keytype.ECDSAP256 {
		t.Fatalf("made a %s", got)
	}
	again, err := devicekey.Load(uri)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		hh := h.New()
		hh.Write([]byte("hello"))
		digest := hh.Sum(nil)
		sig, err := again.Sign(rand.Reader, digest, h)
		if err != nil {
			t.Fatalf("sign %v: %v", h, err)
		}
		if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), digest, sig) {
			t.Fatalf("%v: the TPM's signature does not verify", h)
		}
	}
	attrs, err := devicekey.TPMObjectAttributes(uri)
	if err != nil {
		t.Fatal(err)
	}
	if !attrs.FixedTPM || !attrs.FixedParent || !attrs.SensitiveDataOrigin || !attrs.SignEncrypt || attrs.Decrypt || attrs.Restricted {
		t.Fatalf("object attributes %+v", attrs)
	}
	if r := devicekey.Redacted(uri); !strings.HasPrefix(r, store+";key=") || len(r) != len(store)+len(";key=")+16 {
		t.Fatalf("Redacted: %q", r)
	}
	if tok, err := devicekey.TokenOf(uri); err != nil || tok != store {
		t.Fatalf("TokenOf: %q %v", tok, err)
	}
	if err := devicekey.Delete(uri); err != nil {
		t.Fatal(err)
	}

	// Another TPM: the blob does not load there.
	other := testenv.SWTPM(t)
	moved := strings.Replace(uri, store, other, 1)
	_, err = devicekey.Load(moved)
	otherAddr := strings.TrimPrefix(other, "tpm:")
	if !errors.Is(err, devicekey.ErrNotFound) || !strings.HasPrefix(err.Error(), "devicekey: TPM "+otherAddr+": this TPM cannot load the key: it was made by another TPM, or this TPM's owner hierarchy was cleared since (TPM_RC_INTEGRITY") {
		t.Fatalf("loading in another TPM: %v", err)
	}
	// A tampered private blob does not load either.
	i := strings.Index(uri, ";private=") + len(";private=") + 20
	flipped := uri[:i] + map[bool]string{true: "A", false: "B"}[uri[i] != 'A'] + uri[i+1:]
	if _, err := devicekey.Load(flipped); !errors.Is(err, devicekey.ErrNotFound) {
		t.Fatalf("a tampered key: %v", err)
	}
	if _, _, err := devicekey.Generate(store, keytype.ECDSAP384, "x"); err == nil || err.Error() != "devicekey: key type ecdsa-p384 cannot be made in a TPM (use ecdsa-p256)" {
		t.Fatalf("P-384: %v", err)
	}
}

// TestTPMRefusals: a TPM that is not there, and URIs that name no TPM or
// no key, are refused with exact errors.
func TestTPMRefusals(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	notDevice := filepath.Join(t.TempDir(), "tpm0")
	os.WriteFile(notDevice, nil, 0o600)
	for uri, want := range map[string]string{
		"tpm:device=/dev/certgate-no-tpm":                 "devicekey: TPM device=/dev/certgate-no-tpm: stat /dev/certgate-no-tpm: no such file or directory",
		"tpm:device=" + notDevice:                         "devicekey: TPM device=" + notDevice + ": TPM file is not a device: -rw------- (" + notDevice + ")",
		"tpm:simulator=" + closed:                         "devicekey: TPM simulator=" + closed + ": could not connect to command service at \"" + closed + "\": could not dial \"" + closed + "\": dial tcp " + closed + ": connect: connection refused",
		"tpm:device=dev/tpmrm0":                           `devicekey: bad TPM URI: device "dev/tpmrm0" is not an absolute path`,
		"tpm:device=/dev/tpmrm0;simulator=127.0.0.1:2321": "devicekey: bad TPM URI: device and simulator are exclusive",
		"tpm:":                               `devicekey: bad TPM URI: "" is not NAME=VALUE`,
		"tpm:handle=0x81000001":              `devicekey: bad TPM URI: unknown attribute "handle"`,
		"tpm:device=/dev/tpmrm0;public=AAAA": "devicekey: bad TPM URI: public and private go together",
		"tpm:device=/dev/tpmrm0;public=AA;private=AA": "devicekey: tpm:device=/dev/tpmrm0 names a key; give the TPM only (a new key is made in it)",
	} {
		if _, _, err := devicekey.Generate(uri, keytype.ECDSAP256, "x"); err == nil || err.Error() != want {
			t.Errorf("Generate(%q): %v\nwant %s", uri, err, want)
		}
	}
	if _, err := devicekey.Load("tpm:device=/dev/tpmrm0"); err == nil || err.Error() != "devicekey: tpm:device=/dev/tpmrm0 names no key (public and private)" {
		t.Errorf("Load without a key: %v", err)
	}
}

// TestTPMNoAnswer: a simulator address where something listens but never
// answers (not a TPM) is given up after TPMTimeout, not waited on forever.
func TestTPMNoAnswer(t *testing.T) {
	var addr string
	for i := 0; i < 100 && addr == ""; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		if err != nil {
			l.Close()
			continue
		}
		addr = l.Addr().String()
		for _, ln := range []net.Listener{l, l2} {
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					t.Cleanup(func() { c.Close() })
					go io.Copy(io.Discard, c)
				}
			}()
		}
	}
	if addr == "" {
		t.Fatal("no two consecutive free ports")
	}
	defer func(d time.Duration) { devicekey.TPMTimeout = d }(devicekey.TPMTimeout)
	devicekey.TPMTimeout = 2 * time.Second
	_, _, err := devicekey.Generate("tpm:simulator="+addr, keytype.ECDSAP256, "")
	if err == nil || err.Error() != "devicekey: TPM simulator="+addr+": no answer within 2s" {
		t.Fatalf("a silent peer: %v", err)
	}
}

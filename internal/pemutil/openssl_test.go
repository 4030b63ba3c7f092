package pemutil

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/certgate/certgate/internal/keytype"
)

// These tests run the real openssl binary: what we write, openssl must read,
// and what openssl writes with PBES2, we must read.

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not in PATH")
	}
}

func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// passFile writes the passphrase to a file so it is not on a command line.
func passFile(t *testing.T, dir, pass string) string {
	t.Helper()
	p := filepath.Join(dir, "pass")
	if err := os.WriteFile(p, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestOpenSSLReadsOurEncryptedKey(t *testing.T) {
	requireOpenSSL(t)
	for _, kt := range keytype.All {
		t.Run(string(kt), func(t *testing.T) {
			dir := t.TempDir()
			key := testKey(t, kt)
			data, err := EncryptPrivateKey(key, []byte(testPassphrase))
			if err != nil {
				t.Fatal(err)
			}
			in := filepath.Join(dir, "enc.pem")
			if err := os.WriteFile(in, data, 0o600); err != nil {
				t.Fatal(err)
			}
			got := openssl(t, "pkey", "-in", in, "-passin", passFile(t, dir, testPassphrase), "-pubout")
			if want := publicPEM(t, key.Public()); !bytes.Equal(got, want) {
				t.Fatalf("openssl printed\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestOpenSSLRefusesOurKeyWithWrongPassphrase(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	data, err := EncryptPrivateKey(testKey(t, keytype.ECDSAP256), []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "enc.pem")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "pkey", "-in", in, "-passin", passFile(t, dir, "wrong"), "-noout")
	if err := cmd.Run(); err == nil {
		t.Fatal("openssl decrypted our key with a wrong passphrase")
	}
}

func TestWeReadOpenSSLEncryptedKey(t *testing.T) {
	requireOpenSSL(t)
	variants := []struct {
		name string
		args []string
	}{
		{"aes-256-cbc hmacWithSHA256", []string{"-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"}},
		{"openssl default", nil},
		{"aes-128-cbc hmacWithSHA1", []string{"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"}},
		{"aes-192-cbc hmacWithSHA512 iter 100000", []string{"-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA512", "-iter", "100000"}},
	}
	for _, kt := range keytype.All {
		for i, v := range variants {
			if i > 0 && kt != keytype.ECDSAP256 {
				continue // the cipher and PRF variants do not depend on the key type
			}
			t.Run(string(kt)+"/"+v.name, func(t *testing.T) {
				dir := t.TempDir()
				key := testKey(t, kt)
				plain, err := EncodePrivateKey(key)
				if err != nil {
					t.Fatal(err)
				}
				in := filepath.Join(dir, "plain.pem")
				if err := os.WriteFile(in, plain, 0o600); err != nil {
					t.Fatal(err)
				}
				args := append([]string{"pkcs8", "-topk8", "-in", in, "-passout", passFile(t, dir, testPassphrase)}, v.args...)
				enc := openssl(t, args...)
				got, err := DecryptPrivateKey(enc, []byte(testPassphrase))
				if err != nil {
					t.Fatal(err)
				}
				if !got.(equaler).Equal(key) {
					t.Fatal("decrypted a different key")
				}
				_, err = DecryptPrivateKey(enc, []byte(testPassphrase+"!"))
				if !errors.Is(err, ErrWrongPassphrase) || err.Error() != "pemutil: wrong passphrase" {
					t.Fatalf("wrong passphrase: err = %v", err)
				}
			})
		}
	}
}

// TestOpenSSLReadsOurPEM checks the unencrypted encodings too.
func TestOpenSSLReadsOurPEM(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := testKey(t, keytype.Ed25519)
	plain, err := EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := openssl(t, "pkey", "-in", write("key.pem", plain), "-pubout"), publicPEM(t, key.Public()); !bytes.Equal(got, want) {
		t.Errorf("openssl pkey printed\n%s\nwant\n%s", got, want)
	}
	openssl(t, "req", "-in", write("csr.pem", EncodeCSR(csrDER(t))), "-noout", "-verify")
	openssl(t, "x509", "-in", write("cert.pem", EncodeCertificates(selfSigned(t, "leaf"))), "-noout")
}

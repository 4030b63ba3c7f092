package pemutil

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/keytype"
)

const testPassphrase = "correct horse battery staple"

func TestEncryptDecryptRoundTrip(t *testing.T) {
	for _, kt := range keytype.All {
		t.Run(string(kt), func(t *testing.T) {
			key := testKey(t, kt)
			data, err := EncryptPrivateKey(key, []byte(testPassphrase))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----\n") {
				t.Fatalf("wrong block: %.50q", data)
			}
			got, err := DecryptPrivateKey(data, []byte(testPassphrase))
			if err != nil {
				t.Fatal(err)
			}
			if !got.(equaler).Equal(key) {
				t.Fatal("round trip changed the key")
			}
		})
	}
}

// TestEncryptPrivateKeyParameters checks what EncryptPrivateKey writes:
// PBES2, PBKDF2-HMAC-SHA256 with Iterations rounds and a fresh 16-byte
// salt, AES-256-CBC with a fresh IV.
func TestEncryptPrivateKeyParameters(t *testing.T) {
	key := testKey(t, keytype.ECDSAP256)
	var seen [][]byte
	for range 2 {
		data, err := EncryptPrivateKey(key, []byte(testPassphrase))
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeOne(data, TypeEncryptedPrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		var info encryptedPrivateKeyInfo
		must(asn1.Unmarshal(b.Bytes, &info))
		var params pbes2Params
		must(asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params))
		var kdf pbkdf2Params
		must(asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf))
		var iv []byte
		must(asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv))
		switch {
		case !info.Algorithm.Algorithm.Equal(oidPBES2):
			t.Errorf("scheme %v", info.Algorithm.Algorithm)
		case !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2):
			t.Errorf("kdf %v", params.KeyDerivationFunc.Algorithm)
		case !kdf.PRF.Algorithm.Equal(oidHMACWithSHA256):
			t.Errorf("prf %v", kdf.PRF.Algorithm)
		case kdf.IterationCount != Iterations:
			t.Errorf("iterations %d, want %d", kdf.IterationCount, Iterations)
		case len(kdf.Salt.Bytes) != 16:
			t.Errorf("salt %d bytes", len(kdf.Salt.Bytes))
		case !params.EncryptionScheme.Algorithm.Equal(oidAES256CBC):
			t.Errorf("cipher %v", params.EncryptionScheme.Algorithm)
		case len(iv) != 16:
			t.Errorf("iv %d bytes", len(iv))
		}
		for _, s := range seen {
			if bytes.Contains(b.Bytes, s[:16]) {
				t.Error("salt or IV reused between two encryptions")
			}
		}
		seen = append(seen, kdf.Salt.Bytes, iv)
	}
}

func TestEncryptPrivateKeyRefuses(t *testing.T) {
	_, err := EncryptPrivateKey(testKey(t, keytype.ECDSAP256), nil)
	if err == nil || err.Error() != "pemutil: empty passphrase" || !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("empty passphrase: err = %v", err)
	}
	_, err = EncryptPrivateKey(fakeSigner{}, []byte("pw"))
	want := "pemutil: x509: unknown key type while marshaling PKCS#8: pemutil.fakeSigner"
	if err == nil || err.Error() != want {
		t.Errorf("unknown key: err = %v, want %q", err, want)
	}
}

// TestDecryptVariants decrypts parameter choices other tools write.
func TestDecryptVariants(t *testing.T) {
	key := testKey(t, keytype.ECDSAP384)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pw := []byte(testPassphrase)
	for _, tc := range []struct {
		name string
		o    encOpts
	}{
		{"aes128 default PRF (SHA-1)", encOpts{cipher: oidAES128CBC, keySize: 16, noPRF: true}},
		{"aes192 SHA-512", encOpts{cipher: oidAES192CBC, keySize: 24, prf: oidHMACWithSHA512}},
		{"aes256 SHA-384 explicit key length", encOpts{prf: oidHMACWithSHA384, keyLength: 32}},
		{"SHA-224", encOpts{prf: oidHMACWithSHA224}},
		{"SHA-512/256 8-byte salt", encOpts{prf: oidHMACWithSHA512_256, salt: asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte("8 bytes!")}}},
		{"one iteration", encOpts{iter: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptPrivateKey(buildEncrypted(t, der, pw, tc.o), pw)
			if err != nil {
				t.Fatal(err)
			}
			if !got.(equaler).Equal(key) {
				t.Fatal("wrong key")
			}
		})
	}
}

func TestDecryptPrivateKeyRefuses(t *testing.T) {
	key := testKey(t, keytype.ECDSAP256)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xder, err := x509.MarshalPKCS8PrivateKey(x)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pw := []byte(testPassphrase)
	fixturePW := []byte("fixture passphrase")
	enc := func(o encOpts) []byte { return buildEncrypted(t, der, pw, o) }
	const reencrypt = " (want PBES2; re-encrypt with openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256)"
	for _, tc := range []struct {
		name string
		in   []byte
		pw   []byte
		want string
	}{
		{"empty passphrase", enc(encOpts{}), nil, "pemutil: empty passphrase"},
		{"wrong passphrase", enc(encOpts{}), []byte("Correct horse battery staple"), "pemutil: wrong passphrase"},
		{"good padding, not PKCS#8", buildEncrypted(t, []byte("0123456789abcdef0123"), pw, encOpts{}), pw, "pemutil: wrong passphrase"},
		{"unencrypted key", plain, pw, `pemutil: unexpected PEM block "PRIVATE KEY" (want ENCRYPTED PRIVATE KEY)`},
		{"garbage", []byte("hunter2"), pw, "pemutil: no PEM data found"},
		{"X25519 cannot sign", buildEncrypted(t, xder, pw, encOpts{}), pw, "pemutil: private key of type *ecdh.PrivateKey cannot sign"},
		{"openssl PBES1 MD5 DES", readFile(t, "testdata/pbes1-md5-des.key.pem"), fixturePW, "pemutil: unsupported encryption scheme PBES1 pbeWithMD5AndDES-CBC" + reencrypt},
		{"openssl PKCS#12 3DES", readFile(t, "testdata/pkcs12-sha1-3des.key.pem"), fixturePW, "pemutil: unsupported encryption scheme PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC" + reencrypt},
		{"openssl scrypt", readFile(t, "testdata/scrypt.key.pem"), fixturePW, "pemutil: unsupported key derivation function scrypt (want PBKDF2)"},
		{"openssl PBES2 3DES", readFile(t, "testdata/pbes2-des-ede3.key.pem"), fixturePW, "pemutil: unsupported cipher DES-EDE3-CBC (want AES-CBC)"},
		{"unknown scheme", enc(encOpts{scheme: asn1.ObjectIdentifier{1, 2, 3, 4}}), pw, "pemutil: unsupported encryption scheme 1.2.3.4" + reencrypt},
		{"AES-GCM", enc(encOpts{cipher: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}, ciphertext: make([]byte, 32)}), pw, "pemutil: unsupported cipher aes256-GCM (want AES-CBC)"},
		{"HMAC-MD5", enc(encOpts{prf: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 6}, ciphertext: make([]byte, 32)}), pw, "pemutil: unsupported PBKDF2 PRF hmacWithMD5"},
		{"absurd iteration count", enc(encOpts{iter: MaxIterations + 1, ciphertext: make([]byte, 32)}), pw, "pemutil: PBKDF2 iteration count 10000001 is above the limit of 10000000"},
		{"huge iteration count", enc(encOpts{iter: 1 << 62, ciphertext: make([]byte, 32)}), pw, "pemutil: PBKDF2 iteration count 4611686018427387904 is above the limit of 10000000"},
		{"negative iteration count", enc(encOpts{iter: -1, ciphertext: make([]byte, 32)}), pw, "pemutil: malformed encrypted private key: PBKDF2 iteration count -1"},
		{"salt from another source", enc(encOpts{salt: asn1.RawValue{FullBytes: []byte{0x30, 0x00}}, ciphertext: make([]byte, 32)}), pw, "pemutil: unsupported PBKDF2 salt source (want a specified salt)"},
		{"empty salt", enc(encOpts{salt: asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte{}}, ciphertext: make([]byte, 32)}), pw, "pemutil: malformed encrypted private key: empty PBKDF2 salt"},
		{"short IV", enc(encOpts{iv: make([]byte, 8), ciphertext: make([]byte, 32)}), pw, "pemutil: malformed encrypted private key: IV is 8 bytes, want 16"},
		{"key length mismatch", enc(encOpts{keyLength: 16, ciphertext: make([]byte, 32)}), pw, "pemutil: malformed encrypted private key: PBKDF2 key length 16 does not match the cipher's 32"},
		{"ragged ciphertext", enc(encOpts{ciphertext: make([]byte, 17)}), pw, "pemutil: malformed encrypted private key: ciphertext is 17 bytes, not a positive multiple of 16"},
		{"empty ciphertext", enc(encOpts{ciphertext: []byte{}}), pw, "pemutil: malformed encrypted private key: ciphertext is 0 bytes, not a positive multiple of 16"},
		{"trailing DER", enc(encOpts{trailing: true}), pw, "pemutil: malformed encrypted private key: trailing data"},
		{"not DER", pemBlock("ENCRYPTED PRIVATE KEY", []byte{0x30, 0x00}), pw, "pemutil: malformed encrypted private key: asn1: syntax error: sequence truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptPrivateKey(tc.in, tc.pw)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got != nil {
				t.Error("returned a key with an error")
			}
		})
	}
}

func TestWrongPassphraseIsSentinel(t *testing.T) {
	data, err := EncryptPrivateKey(testKey(t, keytype.Ed25519), []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecryptPrivateKey(data, []byte("nope")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("err = %v, want ErrWrongPassphrase", err)
	}
}

func TestUnpad(t *testing.T) {
	block := func(tail ...byte) []byte {
		b := make([]byte, 32-len(tail))
		return append(b, tail...)
	}
	for _, tc := range []struct {
		in   []byte
		want int // remaining length, -1 for bad padding
	}{
		{block(1), 31},
		{block(2, 2), 30},
		{bytes.Repeat([]byte{16}, 32), 16},
		{block(1, 2), -1},
		{block(0), -1},
		{block(17), -1},
		{append(make([]byte, 16), bytes.Repeat([]byte{16}, 15)...), -1}, // not a whole block
		{append([]byte{15}, bytes.Repeat([]byte{16}, 15)...), -1},
		{nil, -1},
	} {
		got, ok := unpad(tc.in)
		if (tc.want < 0) == ok || (ok && len(got) != tc.want) {
			t.Errorf("unpad(% x) = %d bytes, %v; want %d", tc.in, len(got), ok, tc.want)
		}
	}
}

// BenchmarkDecryptPrivateKey measures what one decryption with the
// written iteration count costs; see Iterations.
func BenchmarkDecryptPrivateKey(b *testing.B) {
	data, err := EncryptPrivateKey(testKey(b, keytype.ECDSAP256), []byte(testPassphrase))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := DecryptPrivateKey(data, []byte(testPassphrase)); err != nil {
			b.Fatal(err)
		}
	}
}

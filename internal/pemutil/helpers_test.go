package pemutil

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"hash"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/keytype"
)

var (
	keysMu sync.Mutex
	keys   = map[keytype.Type]crypto.Signer{}
)

// testKey returns a key of type kt, generated once per test binary (RSA-4096
// generation is slow).
func testKey(t testing.TB, kt keytype.Type) crypto.Signer {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[kt]; ok {
		return k
	}
	k, err := keytype.Generate(kt)
	if err != nil {
		t.Fatal(err)
	}
	keys[kt] = k
	return k
}

func selfSigned(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	key := testKey(t, keytype.ECDSAP256)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Unix(1_700_000_000, 0),
		NotAfter:     time.Unix(1_800_000_000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func csrDER(t testing.TB) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "billing"},
	}, testKey(t, keytype.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// encOpts describes a hand-built EncryptedPrivateKeyInfo, for inputs that
// EncryptPrivateKey never writes.
type encOpts struct {
	scheme    asn1.ObjectIdentifier // default PBES2
	kdf       asn1.ObjectIdentifier // default PBKDF2
	cipher    asn1.ObjectIdentifier // default aes256-CBC
	keySize   int                   // default 32
	prf       asn1.ObjectIdentifier // default hmacWithSHA256; nil with noPRF
	noPRF     bool                  // omit the PRF (meaning hmacWithSHA1)
	iter      int                   // default 1000
	keyLength int                   // encoded keyLength, 0 to omit
	salt      asn1.RawValue         // default a 16-byte OCTET STRING
	iv        []byte                // default 16 zero bytes
	trailing  bool                  // append a byte after the structure
	// ciphertext, when set, replaces the encrypted plain text (for
	// parameters the test cannot or need not encrypt with).
	ciphertext []byte
}

// buildEncrypted encrypts plain as EncryptPrivateKey would, with opts.
func buildEncrypted(t testing.TB, plain, passphrase []byte, o encOpts) []byte {
	t.Helper()
	if o.scheme == nil {
		o.scheme = oidPBES2
	}
	if o.kdf == nil {
		o.kdf = oidPBKDF2
	}
	if o.cipher == nil {
		o.cipher, o.keySize = oidAES256CBC, 32
	}
	if o.prf == nil && !o.noPRF {
		o.prf = oidHMACWithSHA256
	}
	if o.iter == 0 {
		o.iter = 1000
	}
	if o.salt.FullBytes == nil && o.salt.Bytes == nil {
		o.salt = asn1.RawValue{Tag: asn1.TagOctetString, Bytes: make([]byte, 16)}
	}
	if o.iv == nil {
		o.iv = make([]byte, 16)
	}
	ciphertext := o.ciphertext
	if ciphertext == nil {
		ciphertext = encryptForTest(t, plain, passphrase, o)
	}
	p := pbkdf2Params{Salt: o.salt, IterationCount: o.iter, KeyLength: o.keyLength}
	if !o.noPRF {
		p.PRF = pkix.AlgorithmIdentifier{Algorithm: o.prf, Parameters: asn1.NullRawValue}
	}
	kdf := must(asn1.Marshal(p))
	ivDER := must(asn1.Marshal(o.iv))
	params := must(asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: o.kdf, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: o.cipher, Parameters: asn1.RawValue{FullBytes: ivDER}},
	}))
	der := must(asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: o.scheme, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: ciphertext,
	}))
	if o.trailing {
		der = append(der, 0)
	}
	return pemBlock(TypeEncryptedPrivateKey, der)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// encryptForTest is the encryption half of buildEncrypted, kept apart so
// the test does not just call the code under test.
func encryptForTest(t testing.TB, plain, passphrase []byte, o encOpts) []byte {
	t.Helper()
	h := sha256.New
	for _, p := range prfs {
		if p.oid.Equal(o.prf) {
			h = p.hash
		}
	}
	if o.noPRF {
		h = prfs[0].hash // SHA-1
	}
	return cbcEncrypt(t, plain, pbkdf2Key(t, h, passphrase, o.salt.Bytes, o.iter, o.keySize), o.iv)
}
func pbkdf2Key(t testing.TB, h func() hash.Hash, pass, salt []byte, iter, size int) []byte {
	t.Helper()
	k, err := pbkdf2.Key(h, string(pass), salt, iter, size)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cbcEncrypt pads plain (PKCS#7) and encrypts it with AES-CBC.
func cbcEncrypt(t testing.TB, plain, key, iv []byte) []byte {
	t.Helper()
	n := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append([]byte{}, plain...)
	for range n {
		buf = append(buf, byte(n))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(buf, buf)
	return buf
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

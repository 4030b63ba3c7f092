package pemutil

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
)

// Iterations is the PBKDF2-HMAC-SHA256 iteration count EncryptPrivateKey
// writes. 600,000 is OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256;
// on the reference machine (2 shared x86-64 cores with SHA extensions) one
// derivation takes about 120 ms, which a CA start-up pays once per key and
// an attacker pays per guess.
const Iterations = 600_000

// MaxIterations bounds the iteration count DecryptPrivateKey accepts, so a
// crafted key file cannot make loading it take minutes: 10,000,000 is about
// two seconds here, 16 times what this package writes.
const MaxIterations = 10_000_000

const saltSize = 16 // RFC 8018 asks for at least 8 bytes; NIST SP 800-132 for 16

var (
	// ErrWrongPassphrase is returned when the passphrase does not decrypt
	// the key. A corrupted ciphertext looks the same and gets the same error.
	ErrWrongPassphrase = errors.New("pemutil: wrong passphrase")
	// ErrEmptyPassphrase is returned for an empty passphrase.
	ErrEmptyPassphrase = errors.New("pemutil: empty passphrase")
)

// Object identifiers from RFC 8018 (PKCS #5 v2.1), RFC 7292 (PKCS #12),
// RFC 7914 (scrypt) and NIST's AES arc.
var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}

	oidHMACWithSHA1       = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidHMACWithSHA512_224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 12}
	oidHMACWithSHA512_256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 13}

	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// prfs are the PBKDF2 pseudo-random functions RFC 8018 defines.
var prfs = []struct {
	oid  asn1.ObjectIdentifier
	hash func() hash.Hash
}{
	{oidHMACWithSHA1, sha1.New},
	{oidHMACWithSHA224, sha256.New224},
	{oidHMACWithSHA256, sha256.New},
	{oidHMACWithSHA384, sha512.New384},
	{oidHMACWithSHA512, sha512.New},
	{oidHMACWithSHA512_224, sha512.New512_224},
	{oidHMACWithSHA512_256, sha512.New512_256},
}

// aesCiphers maps the AES-CBC encryption schemes to their key sizes.
var aesCiphers = []struct {
	oid     asn1.ObjectIdentifier
	name    string
	keySize int
}{
	{oidAES128CBC, "aes128-CBC", 16},
	{oidAES192CBC, "aes192-CBC", 24},
	{oidAES256CBC, "aes256-CBC", 32},
}

// knownUnsupported names algorithms we recognise but refuse, so the error
// tells the operator what the file is instead of printing an OID.
var knownUnsupported = map[string]string{
	// PBES1 (RFC 8018 section 6.1): DES or RC2 with MD2, MD5 or SHA-1.
	"1.2.840.113549.1.5.1":  "PBES1 pbeWithMD2AndDES-CBC",
	"1.2.840.113549.1.5.3":  "PBES1 pbeWithMD5AndDES-CBC",
	"1.2.840.113549.1.5.4":  "PBES1 pbeWithMD2AndRC2-CBC",
	"1.2.840.113549.1.5.6":  "PBES1 pbeWithMD5AndRC2-CBC",
	"1.2.840.113549.1.5.10": "PBES1 pbeWithSHA1AndDES-CBC",
	"1.2.840.113549.1.5.11": "PBES1 pbeWithSHA1AndRC2-CBC",
	// PKCS#12 PBE (RFC 7292 appendix C).
	"1.2.840.113549.1.12.1.1": "PKCS#12 pbeWithSHAAnd128BitRC4",
	"1.2.840.113549.1.12.1.2": "PKCS#12 pbeWithSHAAnd40BitRC4",
	"1.2.840.113549.1.12.1.3": "PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC",
	"1.2.840.113549.1.12.1.4": "PKCS#12 pbeWithSHAAnd2-KeyTripleDES-CBC",
	"1.2.840.113549.1.12.1.5": "PKCS#12 pbeWithSHAAnd128BitRC2-CBC",
	"1.2.840.113549.1.12.1.6": "PKCS#12 pbewithSHAAnd40BitRC2-CBC",
	// Key derivation functions other than PBKDF2.
	"1.3.6.1.4.1.11591.4.11": "scrypt",
	// Ciphers other than AES-CBC.
	"1.3.14.3.2.7":              "DES-CBC",
	"1.2.840.113549.3.7":        "DES-EDE3-CBC",
	"1.2.840.113549.3.2":        "RC2-CBC",
	"1.2.840.113549.3.9":        "RC5-CBC-Pad",
	"2.16.840.1.101.3.4.1.6":    "aes128-GCM",
	"2.16.840.1.101.3.4.1.26":   "aes192-GCM",
	"2.16.840.1.101.3.4.1.46":   "aes256-GCM",
	"1.2.410.200004.1.4":        "SEED-CBC",
	"1.2.392.200011.61.1.1.1.2": "camellia128-CBC",
	"1.2.392.200011.61.1.1.1.4": "camellia256-CBC",
	// HMACs RFC 8018 does not list.
	"1.2.840.113549.2.6": "hmacWithMD5",
}

func algName(oid asn1.ObjectIdentifier) string {
	if n, ok := knownUnsupported[oid.String()]; ok {
		return n
	}
	return oid.String()
}

// encryptedPrivateKeyInfo is RFC 5958 section 3.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is RFC 8018 appendix A.4.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is RFC 8018 appendix A.2. Salt is a CHOICE of which only
// "specified" (an OCTET STRING) is in use anywhere.
type pbkdf2Params struct {
	Salt           asn1.RawValue
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// EncryptPrivateKey returns key as an "ENCRYPTED PRIVATE KEY" block: PKCS#8
// encrypted with PBES2, PBKDF2-HMAC-SHA256 ([Iterations] rounds, a random
// 16-byte salt) and AES-256-CBC with a random IV. openssl reads it with
// "openssl pkey -in key.pem".
func EncryptPrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	defer clear(der)

	salt := make([]byte, saltSize)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	dk, err := pbkdf2.Key(sha256.New, string(passphrase), salt, Iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	defer clear(dk)
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	// PKCS#7 padding (RFC 8018 section 6.2.1): 1 to 16 bytes, each the count.
	n := aes.BlockSize - len(der)%aes.BlockSize
	buf := make([]byte, len(der)+n)
	copy(buf, der)
	for i := len(der); i < len(buf); i++ {
		buf[i] = byte(n)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)

	kdf, err := asn1.Marshal(pbkdf2Params{
		Salt:           asn1.RawValue{Tag: asn1.TagOctetString, Bytes: salt},
		IterationCount: Iterations,
		PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	out, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: buf,
	})
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: TypeEncryptedPrivateKey, Bytes: out}), nil
}

// DecryptPrivateKey decrypts exactly one "ENCRYPTED PRIVATE KEY" block.
// A passphrase that does not decrypt it gives [ErrWrongPassphrase];
// algorithms other than PBES2 with PBKDF2 and AES-CBC are refused by name,
// and an iteration count above [MaxIterations] is refused before any work.
func DecryptPrivateKey(data, passphrase []byte) (crypto.Signer, error) {
	return decryptPrivateKey(data, passphrase, MaxIterations)
}

func decryptPrivateKey(data, passphrase []byte, maxIter int) (crypto.Signer, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	b, err := decodeOne(data, TypeEncryptedPrivateKey)
	if err != nil {
		return nil, err
	}
	p, err := parseEncrypted(b.Bytes, maxIter)
	if err != nil {
		return nil, err
	}
	dk, err := pbkdf2.Key(p.prf, string(passphrase), p.salt, p.iter, p.keySize)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	defer clear(dk)
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	buf := make([]byte, len(p.ciphertext))
	defer clear(buf)
	cipher.NewCBCDecrypter(block, p.iv).CryptBlocks(buf, p.ciphertext)

	// A wrong passphrase shows up either as bad padding or, about one time
	// in 256, as good padding around garbage that is not PKCS#8. Both get
	// the same error so neither tells an attacker anything more.
	plain, ok := unpad(buf)
	if !ok {
		return nil, ErrWrongPassphrase
	}
	key, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return asSigner(key)
}

// unpad removes PKCS#7 padding without branching on the padding bytes.
func unpad(buf []byte) ([]byte, bool) {
	if len(buf) == 0 || len(buf)%aes.BlockSize != 0 {
		return nil, false
	}
	n := int(buf[len(buf)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, n)
		match := subtle.ConstantTimeByteEq(buf[len(buf)-i], byte(n))
		good &= subtle.ConstantTimeSelect(inPad, match, 1)
	}
	if good != 1 {
		return nil, false
	}
	return buf[:len(buf)-n], true
}

// encrypted is a parsed, checked EncryptedPrivateKeyInfo.
type encrypted struct {
	prf        func() hash.Hash
	salt       []byte
	iter       int
	keySize    int
	iv         []byte
	ciphertext []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("pemutil: malformed encrypted private key: "+format, args...)
}

func parseEncrypted(der []byte, maxIter int) (*encrypted, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, malformed("%w", err)
	} else if len(rest) > 0 {
		return nil, malformed("trailing data")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("pemutil: unsupported encryption scheme %s (want PBES2; re-encrypt with openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256)", algName(info.Algorithm.Algorithm))
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, malformed("PBES2 parameters: %w", err)
	} else if len(rest) > 0 {
		return nil, malformed("PBES2 parameters: trailing data")
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("pemutil: unsupported key derivation function %s (want PBKDF2)", algName(params.KeyDerivationFunc.Algorithm))
	}
	e := &encrypted{ciphertext: info.EncryptedData}
	for _, c := range aesCiphers {
		if params.EncryptionScheme.Algorithm.Equal(c.oid) {
			e.keySize = c.keySize
		}
	}
	if e.keySize == 0 {
		return nil, fmt.Errorf("pemutil: unsupported cipher %s (want AES-CBC)", algName(params.EncryptionScheme.Algorithm))
	}
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &e.iv); err != nil {
		return nil, malformed("IV: %w", err)
	} else if len(rest) > 0 {
		return nil, malformed("IV: trailing data")
	}
	if len(e.iv) != aes.BlockSize {
		return nil, malformed("IV is %d bytes, want %d", len(e.iv), aes.BlockSize)
	}

	var kdf pbkdf2Params
	if rest, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, malformed("PBKDF2 parameters: %w", err)
	} else if len(rest) > 0 {
		return nil, malformed("PBKDF2 parameters: trailing data")
	}
	if kdf.Salt.Class != asn1.ClassUniversal || kdf.Salt.Tag != asn1.TagOctetString || kdf.Salt.IsCompound {
		return nil, fmt.Errorf("pemutil: unsupported PBKDF2 salt source (want a specified salt)")
	}
	if len(kdf.Salt.Bytes) == 0 {
		return nil, malformed("empty PBKDF2 salt")
	}
	e.salt = kdf.Salt.Bytes
	if kdf.IterationCount < 1 {
		return nil, malformed("PBKDF2 iteration count %d", kdf.IterationCount)
	}
	if kdf.IterationCount > maxIter {
		return nil, fmt.Errorf("pemutil: PBKDF2 iteration count %d is above the limit of %d", kdf.IterationCount, maxIter)
	}
	e.iter = kdf.IterationCount
	if kdf.KeyLength != 0 && kdf.KeyLength != e.keySize {
		return nil, malformed("PBKDF2 key length %d does not match the cipher's %d", kdf.KeyLength, e.keySize)
	}
	if len(kdf.PRF.Algorithm) == 0 {
		e.prf = sha1.New // RFC 8018: the default PRF is hmacWithSHA1
	} else {
		for _, p := range prfs {
			if kdf.PRF.Algorithm.Equal(p.oid) {
				e.prf = p.hash
			}
		}
		if e.prf == nil {
			return nil, fmt.Errorf("pemutil: unsupported PBKDF2 PRF %s", algName(kdf.PRF.Algorithm))
		}
	}

	if len(e.ciphertext) == 0 || len(e.ciphertext)%aes.BlockSize != 0 {
		return nil, malformed("ciphertext is %d bytes, not a positive multiple of %d", len(e.ciphertext), aes.BlockSize)
	}
	return e, nil
}

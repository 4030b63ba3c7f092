package pemutil

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrEncrypted is returned by ParsePrivateKey for an encrypted key: the
// caller needs a passphrase and DecryptPrivateKey.
var ErrEncrypted = errors.New("pemutil: private key is encrypted")

// EncodePrivateKey returns key as an unencrypted PKCS#8 "PRIVATE KEY" block.
// The caller writes it with mode 0600 (see atomicfile) and never logs it.
func EncodePrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pemutil: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: TypePrivateKey, Bytes: der}), nil
}

// ParsePrivateKey parses exactly one unencrypted private key block: PKCS#8
// "PRIVATE KEY", or the legacy "EC PRIVATE KEY" (SEC 1) and "RSA PRIVATE
// KEY" (PKCS#1) that older tools write.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	b, err := decodeOne(data, TypePrivateKey, TypeECPrivateKey, TypeRSAPrivateKey, TypeEncryptedPrivateKey)
	if err != nil {
		return nil, err
	}
	var key any
	switch b.Type {
	case TypeEncryptedPrivateKey:
		return nil, ErrEncrypted
	case TypePrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case TypeECPrivateKey:
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case TypeRSAPrivateKey:
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("pemutil: private key: %w", err)
	}
	return asSigner(key)
}

// asSigner refuses keys that cannot sign, such as X25519 keys.
func asSigner(key any) (crypto.Signer, error) {
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pemutil: private key of type %T cannot sign", key)
	}
	return s, nil
}

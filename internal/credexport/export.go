package credexport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/pemutil"
)

// Format is an output format.
type Format string

// The formats Encode writes.
const (
	PEM Format = "pem"
	P12 Format = "p12"
)

// ParseFormat accepts "pem" or "p12" (also "pkcs12"), in any case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "pem":
		return PEM, nil
	case "p12", "pkcs12", "pfx":
		return P12, nil
	}
	return "", fmt.Errorf("unknown format %q (want pem or p12)", s)
}

// Options say how to encode.
type Options struct {
	Format Format
	// Password protects a PKCS#12 file; it must not be empty. PEM output is
	// not encrypted (the file is written 0600 by the caller).
	Password string
	// Legacy encrypts a PKCS#12 file with PBE-SHA1-3DES and a SHA-1 MAC,
	// for stores that cannot read PBES2 (Windows before Server 2019, Java
	// before 12, macOS Keychain). The default is PBES2 with
	// PBKDF2-HMAC-SHA-256 and AES-256-CBC and an HMAC-SHA-256 MAC.
	Legacy bool
}

// ErrKeyInDevice means the private key is held by a device and cannot be
// written into a file.
var ErrKeyInDevice = errors.New("the private key is held in a hardware key store and never leaves it: it cannot be exported")

// ErrEmptyPassword refuses a PKCS#12 file that anyone could open.
var ErrEmptyPassword = errors.New("an empty PKCS#12 password is refused")

// Encode returns cert's key and chain (leaf first, as a tls.Certificate
// holds it) in o.Format.
func Encode(cert tls.Certificate, o Options) ([]byte, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("credexport: no certificate")
	}
	chain := make([]*x509.Certificate, len(cert.Certificate))
	for i, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("credexport: certificate %d: %w", i, err)
		}
		chain[i] = c
	}
	// Only a key in memory can be written out; any other crypto.Signer is
	// a handle on a device.
	var key crypto.Signer
	switch k := cert.PrivateKey.(type) {
	case *ecdsa.PrivateKey:
		key = k
	case *rsa.PrivateKey:
		key = k
	case ed25519.PrivateKey:
		key = k
	default:
		return nil, fmt.Errorf("credexport: %w", ErrKeyInDevice)
	}
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, errors.New("credexport: the private key does not match the certificate")
	}
	switch o.Format {
	case PEM:
		keyPEM, err := pemutil.EncodePrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("credexport: %w", err)
		}
		return append(keyPEM, pemutil.EncodeCertificates(chain...)...), nil
	case P12:
		if o.Password == "" {
			return nil, fmt.Errorf("credexport: %w", ErrEmptyPassword)
		}
		enc := pkcs12.Modern2023
		if o.Legacy {
			enc = pkcs12.LegacyDES
		}
		b, err := enc.Encode(key, chain[0], chain[1:], o.Password)
		if err != nil {
			return nil, fmt.Errorf("credexport: pkcs12: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("credexport: unknown format %q (want pem or p12)", o.Format)
}

// WriteFile encodes cert and replaces path with it atomically, mode 0600
// (a PEM export holds the key in the clear; a PKCS#12 file is only as
// strong as its password).
func WriteFile(path string, cert tls.Certificate, o Options) error {
	b, err := Encode(cert, o)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("credexport: %w", err)
	}
	return nil
}

// Package keytype names the key algorithms certgate issues for and accepts,
// generates keys of each, and tells which type a public key is.
//
// The allow list lives here so the CSR checks, the CA and the clients agree:
// ECDSA P-256 (the default) and P-384, Ed25519, and RSA of 2048, 3072 or
// 4096 bits. Anything else (RSA under 2048 bits, P-224, P-521, DSA) is
// refused with [ErrUnsupported].
package keytype

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
)

// Type is a key algorithm and size, spelled as on the command line.
type Type string

// The supported key types.
const (
	ECDSAP256 Type = "ecdsa-p256"
	ECDSAP384 Type = "ecdsa-p384"
	Ed25519   Type = "ed25519"
	RSA2048   Type = "rsa-2048"
	RSA3072   Type = "rsa-3072"
	RSA4096   Type = "rsa-4096"
)

// Default is the key type used when none is chosen.
const Default = ECDSAP256

// All lists the supported types in order of preference.
var All = []Type{ECDSAP256, ECDSAP384, Ed25519, RSA2048, RSA3072, RSA4096}

// ErrUnsupported is returned for a key type or size outside the allow list.
var ErrUnsupported = errors.New("unsupported key type")

// Parse checks that s names a supported type.
func Parse(s string) (Type, error) {
	for _, t := range All {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, len(All))
	for i, t := range All {
		names[i] = string(t)
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnsupported, s, strings.Join(names, ", "))
}

// Generate makes a new private key of type t from crypto/rand.
func Generate(t Type) (crypto.Signer, error) {
	switch t {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, t)
}

// Of returns the type of a public key, or ErrUnsupported with what it is.
func Of(pub crypto.PublicKey) (Type, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s", ErrUnsupported, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return Ed25519, nil
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); bits {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		default:
			return "", fmt.Errorf("%w: RSA %d bits (want 2048, 3072 or 4096)", ErrUnsupported, bits)
		}
	case nil:
		return "", fmt.Errorf("%w: no public key", ErrUnsupported)
	}
	return "", fmt.Errorf("%w: %T", ErrUnsupported, pub)
}

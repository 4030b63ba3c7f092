package devicekey

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pkcs11uri"
)

// Scheme starts the URIs of PKCS#11 tokens and their keys; [TPMScheme]
// those of TPMs and theirs.
const Scheme = "pkcs11:"

// IsURI reports whether s names a key in a device rather than a file.
func IsURI(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, Scheme) || strings.HasPrefix(s, TPMScheme)
}

func isTPM(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), TPMScheme) }

// ErrNotFound means the device holds no key the URI names.
var ErrNotFound = errors.New("devicekey: no such key in the token")

// Generate makes a key of type kt in the device storeURI names (a PKCS#11
// token's URI, labelled label there, or a TPM's) and returns it and the
// URI that finds it again, which is what the credentials directory
// records. The key cannot be read out of the device.
func Generate(storeURI string, kt keytype.Type, label string) (crypto.Signer, string, error) {
	if isTPM(storeURI) {
		return generateTPM(storeURI, kt)
	}
	return generatePKCS11(storeURI, kt, label)
}

// Load finds the key keyURI names; the signer it returns asks the device
// to sign.
func Load(keyURI string) (crypto.Signer, error) {
	if isTPM(keyURI) {
		return loadTPM(keyURI)
	}
	return loadPKCS11(keyURI)
}

// Delete removes the key keyURI names from its device once a renewal has
// replaced it. A key already gone is not an error. A TPM key holds
// nothing in the TPM (its blobs are in the URI, see [TPMScheme]): once
// the directory's key.uri names the new key, the old one is gone with it,
// and there is nothing to delete.
func Delete(keyURI string) error {
	if isTPM(keyURI) {
		_, err := parseTPMKey(keyURI)
		return err
	}
	return deletePKCS11(keyURI)
}

// parseToken parses a token URI for Generate: it must name no key, and
// the PIN must come from a file or the environment (the URI is written
// into the credentials directory; an inline PIN would be written with it).
func parseToken(s string) (pkcs11uri.URI, error) {
	u, err := pkcs11uri.Parse(strings.TrimSpace(s))
	if err != nil {
		return u, fmt.Errorf("devicekey: %w", err)
	}
	if u.PinValue != "" {
		return u, errors.New("devicekey: pin-value would be written into the credentials directory with the URI; use pin-source=file:/path or env:NAME")
	}
	if u.Object != "" || len(u.ID) > 0 {
		return u, fmt.Errorf("devicekey: %s names a key; give the token only (a new key is made in it)", u.Redacted())
	}
	return u, nil
}

func parseKey(s string) (pkcs11uri.URI, error) {
	u, err := pkcs11uri.Parse(strings.TrimSpace(s))
	if err != nil {
		return u, fmt.Errorf("devicekey: %w", err)
	}
	if len(u.ID) == 0 {
		return u, fmt.Errorf("devicekey: %s names no key (id)", u.Redacted())
	}
	return u, nil
}

// Redacted is keyURI as logs and messages may show it: a PKCS#11 URI
// without an inline PIN; a TPM key's URI with its blobs replaced by the
// first bytes of the SHA-256 of the public one (the blobs are usable on
// this TPM by whoever holds them, like a key file).
func Redacted(keyURI string) string {
	if isTPM(keyURI) {
		u, err := parseTPM(keyURI)
		if err != nil {
			return TPMScheme + "(unparseable)"
		}
		if u.public == nil {
			return u.storeString()
		}
		sum := sha256.Sum256(u.public)
		return fmt.Sprintf("%s;key=%x", u.storeString(), sum[:8])
	}
	u, err := pkcs11uri.Parse(strings.TrimSpace(keyURI))
	if err != nil {
		return Scheme + "(unparseable)"
	}
	return u.Redacted()
}

// TokenOf is the URI of the token (or the TPM) that holds the key keyURI
// names: where a renewal makes the next key.
func TokenOf(keyURI string) (string, error) {
	if isTPM(keyURI) {
		u, err := parseTPMKey(keyURI)
		if err != nil {
			return "", err
		}
		return u.storeString(), nil
	}
	u, err := parseKey(keyURI)
	if err != nil {
		return "", err
	}
	return u.TokenURI().String(), nil
}

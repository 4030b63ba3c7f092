package devicekey

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certgate/certgate/internal/pkcs11uri"
)

// Scheme starts every URI this package takes.
const Scheme = "pkcs11:"

// IsURI reports whether s names a key in a device rather than a file.
func IsURI(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), Scheme) }

// ErrNotFound means the device holds no key the URI names.
var ErrNotFound = errors.New("devicekey: no such key in the token")

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

// TokenOf is the URI of the token that holds the key keyURI names: where
// a renewal makes the next key.
func TokenOf(keyURI string) (string, error) {
	u, err := parseKey(keyURI)
	if err != nil {
		return "", err
	}
	return u.TokenURI().String(), nil
}

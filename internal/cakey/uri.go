package cakey

import (
	"fmt"

	"github.com/certgate/certgate/internal/pkcs11uri"
)

// URI is a parsed RFC 7512 PKCS#11 URI (package pkcs11uri).
type URI = pkcs11uri.URI

// ErrURI is wrapped by every error of [ParseURI].
var ErrURI = pkcs11uri.ErrURI

// ParseURI is pkcs11uri.Parse, its errors named as the CA key's.
func ParseURI(s string) (URI, error) {
	u, err := pkcs11uri.Parse(s)
	if err != nil {
		return URI{}, fmt.Errorf("cakey: %w", err)
	}
	return u, nil
}

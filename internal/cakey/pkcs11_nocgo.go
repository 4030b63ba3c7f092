//go:build !cgo

package cakey

import (
	"context"
	"crypto"
	"errors"

	"github.com/certgate/certgate/internal/keytype"
)

// errNoCgo: PKCS#11 modules are C libraries, loaded through cgo.
var errNoCgo = errors.New("cakey: this certgate was built without cgo and cannot use PKCS#11 tokens; build it with CGO_ENABLED=1")

type token struct{}

func (t *token) close() error { return nil }

func (s *Source) findInToken(context.Context, URI) (crypto.Signer, error) { return nil, errNoCgo }

func (s *Source) generateInToken(context.Context, URI, keytype.Type, string) (crypto.Signer, string, error) {
	return nil, "", errNoCgo
}

// KeyAttributes reports whether the key a pkcs11: URI names is extractable
// and sensitive, as the token says.
func (s *Source) KeyAttributes(context.Context, string) (extractable, sensitive bool, err error) {
	return false, false, errNoCgo
}

// PKCS11Supported reports whether this build can use PKCS#11 tokens.
const PKCS11Supported = false

//go:build !cgo

package devicekey

import (
	"crypto"
	"errors"

	"github.com/certgate/certgate/internal/keytype"
)

// Supported reports whether this build can use PKCS#11 tokens.
const Supported = false

var errNoCgo = errors.New("devicekey: this certgate was built without cgo and cannot use PKCS#11 tokens; build it with CGO_ENABLED=1")

func generatePKCS11(string, keytype.Type, string) (crypto.Signer, string, error) {
	return nil, "", errNoCgo
}
func loadPKCS11(string) (crypto.Signer, error)                   { return nil, errNoCgo }
func deletePKCS11(string) error                                  { return errNoCgo }
func Attributes(string) (extractable, sensitive bool, err error) { return false, false, errNoCgo }

//go:build cgo

package devicekey

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/ThalesGroup/crypto11"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pkcs11uri"
)

// Supported reports whether this build can use PKCS#11 tokens.
const Supported = true

// tokens are the tokens opened (and logged in to) by this process, by
// module and token: a renewal, a reload and the SDK's reads share one
// session pool instead of logging in each time.
var (
	mu     sync.Mutex
	tokens = map[string]*crypto11.Context{}
)

func open(u pkcs11uri.URI) (*crypto11.Context, error) {
	key := TokenKey(u)
	mu.Lock()
	defer mu.Unlock()
	if c, ok := tokens[key]; ok {
		return c, nil
	}
	c, err := Configure(u)
	if err != nil {
		return nil, fmt.Errorf("devicekey: %w", err)
	}
	tokens[key] = c
	return c, nil
}

// TokenKey identifies the token u names, for a cache of open tokens.
func TokenKey(u pkcs11uri.URI) string {
	key := u.ModulePath + "\x00" + u.Token + "\x00" + u.Serial
	if u.SlotID != nil {
		key += fmt.Sprintf("\x00%d", *u.SlotID)
	}
	return key
}

// Configure loads u's module, opens the token and logs in with the PIN
// u's pin-source gives. The CA's keys (internal/cakey) open tokens here
// too. Errors name the token, never the PIN, and are not prefixed.
func Configure(u pkcs11uri.URI) (*crypto11.Context, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: u.ModulePath, Pin: pin}
	// crypto11 selects a token one way only: the serial is the most
	// specific, then the label, then the slot.
	switch {
	case u.Serial != "":
		cfg.TokenSerial = u.Serial
	case u.Token != "":
		cfg.TokenLabel = u.Token
	default:
		cfg.SlotNumber = u.SlotID
	}
	c, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 token %s: %w", u.TokenURI().Redacted(), err)
	}
	return c, nil
}

// generatePKCS11 makes a key of type kt in the token tokenURI names,
// labelled label: sensitive, not extractable, for signing only. It returns
// the key and the URI that finds it again.
func generatePKCS11(tokenURI string, kt keytype.Type, label string) (crypto.Signer, string, error) {
	tu, err := parseToken(tokenURI)
	if err != nil {
		return nil, "", err
	}
	c, err := open(tu)
	if err != nil {
		return nil, "", err
	}
	k, id, err := NewKey(c, kt, label)
	var kte *KeyTypeError
	switch {
	case errors.As(err, &kte):
		return nil, "", fmt.Errorf("devicekey: %w", err)
	case err != nil:
		return nil, "", fmt.Errorf("devicekey: %s: %w", tu.Redacted(), err)
	}
	ku := tu
	ku.Object, ku.ID, ku.Type = label, id, "private"
	return k, ku.String(), nil
}

// loadPKCS11 finds the key keyURI names.
func loadPKCS11(keyURI string) (crypto.Signer, error) {
	u, err := parseKey(keyURI)
	if err != nil {
		return nil, err
	}
	c, err := open(u)
	if err != nil {
		return nil, err
	}
	ks, err := c.FindKeyPairs(u.ID, nil)
	switch {
	case err != nil:
		return nil, fmt.Errorf("devicekey: %s: %w", u.Redacted(), err)
	case len(ks) == 0:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, u.Redacted())
	case len(ks) > 1:
		return nil, fmt.Errorf("devicekey: %s names %d keys in the token", u.Redacted(), len(ks))
	}
	return ks[0], nil
}

// deletePKCS11 removes the key keyURI names (private and public objects).
// A key already gone is not an error.
func deletePKCS11(keyURI string) error {
	k, err := loadPKCS11(keyURI)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d, ok := k.(interface{ Delete() error })
	if !ok {
		return fmt.Errorf("devicekey: %T cannot be deleted", k)
	}
	if err := d.Delete(); err != nil {
		return fmt.Errorf("devicekey: delete: %w", err)
	}
	return nil
}

// Attributes reports what the token says of the key: whether it is
// extractable and whether it is sensitive (readable in the clear).
func Attributes(keyURI string) (extractable, sensitive bool, err error) {
	k, err := loadPKCS11(keyURI)
	if err != nil {
		return false, false, err
	}
	u, _ := parseKey(keyURI)
	c, err := open(u)
	if err != nil {
		return false, false, err
	}
	if extractable, sensitive, err = Protection(c, k.(crypto11.Signer)); err != nil {
		return false, false, fmt.Errorf("devicekey: %w", err)
	}
	return extractable, sensitive, nil
}

// NewKey makes a key of type kt labelled label in the open token c:
// sensitive, not extractable, for signing only, with a random CKA_ID,
// which it returns. The CA's keys (internal/cakey) are made here too.
// Errors are not prefixed: the caller names itself.
func NewKey(c *crypto11.Context, kt keytype.Type, label string) (crypto.Signer, []byte, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	priv, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, nil, err
	}
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, nil, err
	}
	// Set here, not left to crypto11's defaults: the whole point is that
	// the key cannot be read out, in the clear or wrapped.
	for at, v := range map[crypto11.AttributeType]bool{
		crypto11.CkaSensitive: true, crypto11.CkaExtractable: false, crypto11.CkaToken: true,
		crypto11.CkaSign: true, crypto11.CkaPrivate: true,
	} {
		if err := priv.Set(at, v); err != nil {
			return nil, nil, err
		}
	}
	var k crypto.Signer
	switch kt {
	case keytype.ECDSAP256:
		k, err = c.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	case keytype.ECDSAP384:
		k, err = c.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P384())
	case keytype.RSA2048, keytype.RSA3072, keytype.RSA4096:
		bits := map[keytype.Type]int{keytype.RSA2048: 2048, keytype.RSA3072: 3072, keytype.RSA4096: 4096}[kt]
		k, err = c.GenerateRSAKeyPairWithAttributes(pub, priv, bits)
	default:
		return nil, nil, &KeyTypeError{kt}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s: %w", kt, err)
	}
	return k, id, nil
}

// KeyTypeError is a key type no PKCS#11 token makes here.
type KeyTypeError struct{ Type keytype.Type }

func (e *KeyTypeError) Error() string {
	return fmt.Sprintf("key type %s cannot be made in a PKCS#11 token (use ecdsa-p256, ecdsa-p384 or rsa-*)", e.Type)
}

// Protection reads what the token says of key k: whether it is
// extractable, and whether it is sensitive (readable in the clear).
func Protection(c *crypto11.Context, k crypto11.Signer) (extractable, sensitive bool, err error) {
	attrs, err := c.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaExtractable, crypto11.CkaSensitive})
	if err != nil {
		return false, false, err
	}
	b := func(a *crypto11.Attribute) (bool, error) {
		if a == nil || len(a.Value) != 1 {
			return false, errors.New("the token did not answer a boolean attribute")
		}
		return a.Value[0] != 0, nil
	}
	if extractable, err = b(attrs[crypto11.CkaExtractable]); err != nil {
		return false, false, err
	}
	sensitive, err = b(attrs[crypto11.CkaSensitive])
	return extractable, sensitive, err
}

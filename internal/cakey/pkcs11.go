//go:build cgo

package cakey

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"

	"github.com/certgate/certgate/internal/keytype"
)

// token is an open, logged-in PKCS#11 token.
type token struct {
	ctx *crypto11.Context
}

func (t *token) close() error { return t.ctx.Close() }

// open returns the token u names, opening and logging in once. s.mu is
// held.
func (s *Source) open(u URI) (*token, error) {
	key := u.ModulePath + "\x00" + u.Token + "\x00" + u.Serial
	if u.SlotID != nil {
		key += fmt.Sprintf("\x00%d", *u.SlotID)
	}
	if t, ok := s.tokens[key]; ok {
		return t, nil
	}
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
		// The error names the module and token, never the PIN.
		return nil, fmt.Errorf("cakey: PKCS#11 token %s: %w", u.TokenURI().Redacted(), err)
	}
	if s.tokens == nil {
		s.tokens = map[string]*token{}
	}
	t := &token{ctx: c}
	s.tokens[key] = t
	return t, nil
}

func (s *Source) findInToken(_ context.Context, u URI) (crypto.Signer, error) {
	if len(u.ID) == 0 && u.Object == "" {
		return nil, fmt.Errorf("cakey: %s names no key (id or object)", u.Redacted())
	}
	t, err := s.open(u)
	if err != nil {
		return nil, err
	}
	var label []byte
	if u.Object != "" {
		label = []byte(u.Object)
	}
	ks, err := t.ctx.FindKeyPairs(u.ID, label)
	if err != nil {
		return nil, fmt.Errorf("cakey: %s: %w", u.Redacted(), err)
	}
	switch len(ks) {
	case 0:
		return nil, fmt.Errorf("cakey: %s: no such key in the token", u.Redacted())
	case 1:
		return ks[0], nil
	}
	return nil, fmt.Errorf("cakey: %s names %d keys in the token", u.Redacted(), len(ks))
}

// generateInToken makes a key of type kt labelled label in the token, not
// extractable and sensitive, or returns the one already labelled so. It
// returns the key and its URI. s.mu is held.
func (s *Source) generateInToken(_ context.Context, tu URI, kt keytype.Type, label string) (crypto.Signer, string, error) {
	t, err := s.open(tu)
	if err != nil {
		return nil, "", err
	}
	found, err := t.ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, "", fmt.Errorf("cakey: %s: %w", tu.Redacted(), err)
	}
	if len(found) > 1 {
		return nil, "", fmt.Errorf("cakey: the token holds %d keys labelled %q; remove all but one", len(found), label)
	}
	if len(found) == 1 {
		existing := found[0]
		got, err := keytype.Of(existing.Public())
		if err != nil || got != kt {
			return nil, "", fmt.Errorf("cakey: the token already holds a key labelled %q of another type (%v); remove it or pick another label", label, got)
		}
		id, err := t.ctx.GetAttribute(existing, crypto11.CkaId)
		if err != nil {
			return nil, "", fmt.Errorf("cakey: key %q: %w", label, err)
		}
		ku := tu
		ku.Object, ku.ID, ku.Type = label, id.Value, "private"
		return existing, ku.String(), nil
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, "", fmt.Errorf("cakey: %w", err)
	}
	priv, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, "", fmt.Errorf("cakey: %w", err)
	}
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, "", fmt.Errorf("cakey: %w", err)
	}
	// Never leaves the token: sensitive (not readable in the clear) and not
	// extractable (not even wrapped). crypto11 sets these by default; they
	// are set here so that the property does not rest on a library default.
	for at, v := range map[crypto11.AttributeType]bool{
		crypto11.CkaSensitive: true, crypto11.CkaExtractable: false, crypto11.CkaToken: true, crypto11.CkaSign: true,
		crypto11.CkaPrivate: true,
	} {
		if err := priv.Set(at, v); err != nil {
			return nil, "", fmt.Errorf("cakey: %w", err)
		}
	}
	var k crypto.Signer
	switch kt {
	case keytype.ECDSAP256:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	case keytype.ECDSAP384:
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P384())
	case keytype.RSA2048, keytype.RSA3072, keytype.RSA4096:
		bits := map[keytype.Type]int{keytype.RSA2048: 2048, keytype.RSA3072: 3072, keytype.RSA4096: 4096}[kt]
		k, err = t.ctx.GenerateRSAKeyPairWithAttributes(pub, priv, bits)
	default:
		return nil, "", fmt.Errorf("cakey: key type %s cannot be made in a PKCS#11 token (use ecdsa-p256, ecdsa-p384 or rsa-*)", kt)
	}
	if err != nil {
		return nil, "", fmt.Errorf("cakey: generate %s in %s: %w", kt, tu.Redacted(), err)
	}
	ku := tu
	ku.Object, ku.ID, ku.Type = label, id, "private"
	return k, ku.String(), nil
}

// KeyAttributes reports whether the key a pkcs11: URI names is extractable
// and sensitive, as the token says.
func (s *Source) KeyAttributes(ctx context.Context, uri string) (extractable, sensitive bool, err error) {
	k, err := s.Load(ctx, uri, nil)
	if err != nil {
		return false, false, err
	}
	u, _ := ParseURI(uri) // Load parsed it
	s.mu.Lock()
	t, err := s.open(u)
	s.mu.Unlock()
	if err != nil {
		return false, false, err
	}
	attrs, err := t.ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaExtractable, crypto11.CkaSensitive})
	if err != nil {
		return false, false, fmt.Errorf("cakey: %w", err)
	}
	b := func(a *crypto11.Attribute) (bool, error) {
		if a == nil || len(a.Value) != 1 {
			return false, errors.New("cakey: the token did not answer a boolean attribute")
		}
		return a.Value[0] != 0, nil
	}
	if extractable, err = b(attrs[crypto11.CkaExtractable]); err != nil {
		return false, false, err
	}
	sensitive, err = b(attrs[crypto11.CkaSensitive])
	return extractable, sensitive, err
}

// PKCS11Supported reports whether this build can use PKCS#11 tokens.
const PKCS11Supported = true

//go:build cgo

package cakey

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"

	"github.com/certgate/certgate/internal/devicekey"
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
	key := devicekey.TokenKey(u)
	if t, ok := s.tokens[key]; ok {
		return t, nil
	}
	c, err := devicekey.Configure(u)
	if err != nil {
		// The error names the module and token, never the PIN.
		return nil, fmt.Errorf("cakey: %w", err)
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
	k, id, err := devicekey.NewKey(t.ctx, kt, label)
	var kte *devicekey.KeyTypeError
	switch {
	case errors.As(err, &kte):
		return nil, "", fmt.Errorf("cakey: %w", err)
	case err != nil:
		return nil, "", fmt.Errorf("cakey: %s: %w", tu.Redacted(), err)
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
	if extractable, sensitive, err = devicekey.Protection(t.ctx, k.(crypto11.Signer)); err != nil {
		return false, false, fmt.Errorf("cakey: %w", err)
	}
	return extractable, sensitive, nil
}

// PKCS11Supported reports whether this build can use PKCS#11 tokens.
const PKCS11Supported = true

package cakey

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
)

// Schemes of a key URI.
const (
	SchemeFile   = "file:"
	SchemeSealed = "sealed:"
	SchemePKCS11 = "pkcs11:"
)

// Source loads and makes CA keys. It caches what it loaded (decrypting a
// key costs a key derivation; opening a token, a login) and keeps tokens
// open until Close. It is safe for concurrent use.
type Source struct {
	// Dir resolves relative file: paths (the certgate directory).
	Dir string
	// Passphrase decrypts file: and sealed: keys and seals new ones.
	Passphrase []byte

	mu     sync.Mutex
	keys   map[string]crypto.Signer // by URI, or the sealed PEM's digest
	tokens map[string]*token        // by module path and token
}

// Key returns the private key of c (ca.KeySource).
func (s *Source) Key(ctx context.Context, c store.CACert) (crypto.Signer, error) {
	return s.Load(ctx, c.KeyURI, c.SealedKey)
}

// Load returns the key uri names; sealed holds it for a sealed: URI.
func (s *Source) Load(ctx context.Context, uri string, sealed []byte) (crypto.Signer, error) {
	cacheKey := uri
	if uri == SchemeSealed {
		sum := sha256.Sum256(sealed)
		cacheKey = uri + string(sum[:])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[cacheKey]; ok {
		return k, nil
	}
	var k crypto.Signer
	var err error
	switch {
	case strings.HasPrefix(uri, SchemeFile):
		k, err = s.loadFile(strings.TrimPrefix(uri, SchemeFile))
	case uri == SchemeSealed:
		k, err = s.unseal(sealed)
	case strings.HasPrefix(uri, SchemePKCS11):
		var u URI
		if u, err = ParseURI(uri); err == nil {
			k, err = s.findInToken(ctx, u)
		}
	default:
		err = fmt.Errorf("cakey: key URI %q is not file:, sealed: or pkcs11:", uri)
	}
	if err != nil {
		return nil, err
	}
	if s.keys == nil {
		s.keys = map[string]crypto.Signer{}
	}
	s.keys[cacheKey] = k
	return k, nil
}

func (s *Source) loadFile(p string) (crypto.Signer, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cakey: %w", err)
	}
	return s.decrypt(p, data)
}

func (s *Source) unseal(sealed []byte) (crypto.Signer, error) {
	if len(sealed) == 0 {
		return nil, errors.New("cakey: sealed key is empty")
	}
	return s.decrypt("sealed key", sealed)
}

// PassphraseError is a key that could not be decrypted: no passphrase, or
// the wrong one (Err is pemutil.ErrWrongPassphrase).
type PassphraseError struct {
	What string // the file, or "sealed key"
	Err  error
}

func (e *PassphraseError) Error() string {
	if errors.Is(e.Err, pemutil.ErrWrongPassphrase) {
		return "cakey: " + e.What + ": wrong passphrase"
	}
	return "cakey: " + e.What + ": " + e.Err.Error()
}

func (e *PassphraseError) Unwrap() error { return e.Err }

// errNoPassphrase is a PassphraseError's Err when none was given.
var errNoPassphrase = errors.New("no passphrase: set CERTGATE_PASSPHRASE or --passphrase-file")

func (s *Source) decrypt(what string, data []byte) (crypto.Signer, error) {
	if len(s.Passphrase) == 0 {
		return nil, &PassphraseError{What: what, Err: errNoPassphrase}
	}
	k, err := pemutil.DecryptPrivateKey(data, s.Passphrase)
	if errors.Is(err, pemutil.ErrWrongPassphrase) {
		return nil, &PassphraseError{What: what, Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("cakey: %s: %w", what, err)
	}
	return k, nil
}

// Generated is a new key and where it is.
type Generated struct {
	Signer crypto.Signer
	URI    string // the key URI to record
	Sealed []byte // the encrypted PEM, for a sealed: URI
}

// Generate makes a new key of type kt where spec says: "" or "sealed:"
// for a software key sealed with the passphrase, or a pkcs11: URI naming a
// token, in which the key is generated (not extractable) with label. In a
// token, a key that already has that label is returned instead of making a
// second one: a rotation cut short and run again finds the key it made.
func (s *Source) Generate(ctx context.Context, spec string, kt keytype.Type, label string) (Generated, error) {
	switch {
	case spec == "" || spec == SchemeSealed:
		if len(s.Passphrase) == 0 {
			return Generated{}, errors.New("cakey: no passphrase to seal a new key with: set CERTGATE_PASSPHRASE or --passphrase-file")
		}
		k, err := keytype.Generate(kt)
		if err != nil {
			return Generated{}, fmt.Errorf("cakey: %w", err)
		}
		sealed, err := pemutil.EncryptPrivateKey(k, s.Passphrase)
		if err != nil {
			return Generated{}, fmt.Errorf("cakey: %w", err)
		}
		return Generated{Signer: k, URI: SchemeSealed, Sealed: sealed}, nil
	case strings.HasPrefix(spec, SchemePKCS11):
		u, err := ParseURI(spec)
		if err != nil {
			return Generated{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		k, keyURI, err := s.generateInToken(ctx, u.TokenURI(), kt, label)
		if err != nil {
			return Generated{}, err
		}
		if s.keys == nil {
			s.keys = map[string]crypto.Signer{}
		}
		s.keys[keyURI] = k
		return Generated{Signer: k, URI: keyURI}, nil
	}
	return Generated{}, fmt.Errorf("cakey: key spec %q is not sealed: or a pkcs11: URI", spec)
}

// Close closes the tokens it opened.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, t := range s.tokens {
		errs = append(errs, t.close())
		delete(s.tokens, k)
	}
	clear(s.keys)
	return errors.Join(errs...)
}

// Storage names where a key URI keeps its key, for people: "file",
// "sealed" or "pkcs11"; "" for none (a cross-certificate).
func Storage(uri string) string {
	switch {
	case strings.HasPrefix(uri, SchemePKCS11):
		return "pkcs11"
	case strings.HasPrefix(uri, SchemeFile):
		return "file"
	case uri == SchemeSealed:
		return "sealed"
	}
	return ""
}

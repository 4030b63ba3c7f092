// Package token mints, encodes and parses enrollment tokens.
//
// A token is one self-contained string an operator hands to a client. It
// names the server URL, the identity the client may claim, the expiry, the
// SHA-256 fingerprint of the root certificate (so the client can trust the
// server on first contact with no other input), a public token ID and a
// 256-bit secret. The server stores only [HashSecret] of the secret; redeeming
// a token (single use, atomic) is the store's job.
//
// Encoding: "cgt1." followed by base64url (no padding) of a JSON object.
// The token is a bearer credential: it must never be logged.
package token

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/identity"
)

// Prefix starts every token, so a token is recognisable (and greppable by
// secret scanners) and the format can be versioned.
const Prefix = "cgt1."

// MaxLength bounds the accepted encoded size; real tokens are ~350 bytes.
const MaxLength = 4096

// SecretSize is the secret's length in bytes (256 bits).
const SecretSize = 32

// DefaultTTL is how long a token is valid unless the operator says otherwise.
const DefaultTTL = 15 * time.Minute

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed token")

// Claims is what a token says, apart from its secret.
type Claims struct {
	ServerURL       string      // https URL of the certgate server
	Identity        identity.ID // the only identity it enrolls
	ExpiresAt       time.Time
	RootFingerprint string // lowercase hex SHA-256 of the root certificate's DER
}

// Token is a minted or parsed token.
type Token struct {
	Claims
	ID     string // public, 32 hex characters
	Secret []byte // SecretSize random bytes; never stored, never logged
}

type wire struct {
	URL      string `json:"u"`
	Identity string `json:"i"`
	Expires  int64  `json:"e"`
	Root     string `json:"r"`
	ID       string `json:"k"`
	Secret   string `json:"s"`
}

// Mint makes a new token with a random ID and secret.
func Mint(c Claims) (Token, error) {
	if err := c.validate(); err != nil {
		return Token{}, err
	}
	var id [16]byte
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("token: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, fmt.Errorf("token: %w", err)
	}
	c.ExpiresAt = c.ExpiresAt.UTC().Truncate(time.Second)
	return Token{Claims: c, ID: hex.EncodeToString(id[:]), Secret: secret}, nil
}

func (c Claims) validate() error {
	u, err := url.Parse(c.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("token: server URL %q must be an https:// URL", c.ServerURL)
	}
	if c.Identity.IsZero() {
		return errors.New("token: no identity")
	}
	if fp, err := hex.DecodeString(c.RootFingerprint); err != nil || len(fp) != sha256.Size {
		return fmt.Errorf("token: root fingerprint %q is not a hex SHA-256", c.RootFingerprint)
	}
	if c.ExpiresAt.IsZero() {
		return errors.New("token: no expiry")
	}
	return nil
}

// String encodes the token. The result is a secret.
func (t Token) String() string {
	b, _ := json.Marshal(wire{
		URL:      t.ServerURL,
		Identity: t.Identity.String(),
		Expires:  t.ExpiresAt.Unix(),
		Root:     t.RootFingerprint,
		ID:       t.ID,
		Secret:   base64.RawURLEncoding.EncodeToString(t.Secret),
	})
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Parse decodes a token string. It checks the format only: whether the token
// exists, is unused and unexpired is for the server to decide.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLength {
		return Token{}, fmt.Errorf("token: %w: longer than %d bytes", ErrMalformed, MaxLength)
	}
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Token{}, fmt.Errorf("token: %w: does not start with %q", ErrMalformed, Prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Token{}, fmt.Errorf("token: %w: not base64url", ErrMalformed)
	}
	var w wire
	if err := decodeWire(raw, &w); err != nil {
		return Token{}, fmt.Errorf("token: %w: not a token payload", ErrMalformed)
	}
	id, err := identity.Parse(w.Identity)
	if err != nil {
		return Token{}, fmt.Errorf("token: %w: %v", ErrMalformed, err)
	}
	secret, err := base64.RawURLEncoding.DecodeString(w.Secret)
	if err != nil || len(secret) != SecretSize {
		return Token{}, fmt.Errorf("token: %w: secret is not %d bytes", ErrMalformed, SecretSize)
	}
	if b, err := hex.DecodeString(w.ID); err != nil || len(b) != 16 {
		return Token{}, fmt.Errorf("token: %w: bad token ID", ErrMalformed)
	}
	t := Token{
		Claims: Claims{ServerURL: w.URL, Identity: id, ExpiresAt: time.Unix(w.Expires, 0).UTC(), RootFingerprint: w.Root},
		ID:     w.ID,
		Secret: secret,
	}
	if err := t.validate(); err != nil {
		return Token{}, fmt.Errorf("token: %w: %v", ErrMalformed, strings.TrimPrefix(err.Error(), "token: "))
	}
	return t, nil
}

// decodeWire decodes a token's payload into w. The payload String writes
// is one JSON object of the six fields in wire's order, with an integer
// and strings of printable ASCII without '"' or '\' (a string json.Marshal
// escaped anything in has a '\'): that form is read directly, since
// encoding/json's reflection was ~2% of the server's CPU per enrollment.
// Anything else goes to encoding/json as before (trailing data included),
// so every payload is accepted or refused as before, with the same values
// (TestDecodeWireDifferential, FuzzDecodeWire).
func decodeWire(raw []byte, w *wire) error {
	if canonicalWire(raw, w) {
		return nil
	}
	*w = wire{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(w)
}

// canonicalWire reads b into w if b is in the form String writes (see
// decodeWire); false means only "not in that form".
func canonicalWire(b []byte, w *wire) bool {
	// Each step consumes a literal, then a value up to the next '"' (a
	// string) or ',' (the expiry).
	var ok bool
	for _, f := range [...]struct {
		lit string
		dst *string
	}{
		{`{"u":"`, &w.URL}, {`","i":"`, &w.Identity}, {`","e":`, nil},
		{`,"r":"`, &w.Root}, {`","k":"`, &w.ID}, {`","s":"`, &w.Secret},
	} {
		if b, ok = bytes.CutPrefix(b, []byte(f.lit)); !ok {
			return false
		}
		if f.dst == nil {
			n := bytes.IndexByte(b, ',')
			if n < 0 || !plainInt(b[:n]) {
				return false
			}
			e, err := strconv.ParseInt(string(b[:n]), 10, 64)
			if err != nil {
				return false
			}
			w.Expires, b = e, b[n:]
			continue
		}
		n := 0
		for n < len(b) && b[n] >= 0x20 && b[n] < 0x7f && b[n] != '"' && b[n] != '\\' {
			n++
		}
		*f.dst, b = string(b[:n]), b[n:]
	}
	return string(b) == `"}`
}

// plainInt reports whether b is a JSON integer of at most 18 digits (so
// it fits an int64): -?(0|[1-9][0-9]*).
func plainInt(b []byte) bool {
	b, _ = bytes.CutPrefix(b, []byte("-"))
	if len(b) == 0 || len(b) > 18 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// HashSecret is what the server stores instead of the secret. The secret has
// 256 bits of entropy, so a plain SHA-256 is enough: there is nothing to
// brute-force that a slow hash would protect.
func HashSecret(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}

// SecretMatches compares secret with a stored hash in constant time.
func SecretMatches(secret, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

// Redacted is a loggable description of t: its ID and identity, not its secret.
func (t Token) Redacted() string {
	return fmt.Sprintf("token %s for %s", t.ID, t.Identity)
}

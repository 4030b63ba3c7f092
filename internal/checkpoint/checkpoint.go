package checkpoint

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Checkpoint is a log's state: its first Size records hash to Hash.
type Checkpoint struct {
	Origin string    // which log; also the signing key's name
	Size   int64     // number of records covered
	Hash   []byte    // head hash after record Size (32 bytes)
	Time   time.Time // when it was signed
}

// Errors callers branch on.
var (
	// ErrMalformed is wrapped when a note or its text does not parse.
	ErrMalformed = errors.New("checkpoint: malformed")
	// ErrSignature is wrapped when no signature by the expected key verifies.
	ErrSignature = errors.New("checkpoint: signature does not verify")
	// ErrNotExtended is wrapped by [Consistent] when a checkpoint does not
	// extend an earlier one.
	ErrNotExtended = errors.New("checkpoint: does not extend the earlier checkpoint")
)

// MaxNoteBytes bounds a note a verifier accepts: a checkpoint is about 200
// bytes; 16 signatures of the largest kind would still fit.
const MaxNoteBytes = 64 << 10

const (
	sigEd25519 = 0x01
	hashSize   = sha256.Size
	timeLayout = "2006-01-02T15:04:05.000000000Z"
)

// Text is the note text of c, ending in a newline.
func (c Checkpoint) Text() ([]byte, error) {
	if err := checkName(c.Origin); err != nil {
		return nil, err
	}
	if c.Size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrMalformed, c.Size)
	}
	if len(c.Hash) != hashSize {
		return nil, fmt.Errorf("%w: head hash is %d bytes, want %d", ErrMalformed, len(c.Hash), hashSize)
	}
	return fmt.Appendf(nil, "%s\n%d\n%s\ntime %s\n", c.Origin, c.Size,
		base64.StdEncoding.EncodeToString(c.Hash), c.Time.UTC().Format(timeLayout)), nil
}

// parseText is the inverse of Text.
func parseText(text []byte) (Checkpoint, error) {
	bad := func(why string, a ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(why, a...))
	}
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(lines) < 4 {
		return bad("text has %d lines, want origin, size, hash and time", len(lines))
	}
	var c Checkpoint
	c.Origin = lines[0]
	if err := checkName(c.Origin); err != nil {
		return Checkpoint{}, err
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return bad("size %q is not a decimal number", lines[1])
	}
	c.Size = n
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != hashSize {
		return bad("hash %q is not 32 bytes of base64", lines[2])
	}
	c.Hash = h
	ts, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return bad("fourth line %q is not \"time <RFC 3339>\"", lines[3])
	}
	if c.Time, err = time.Parse(timeLayout, ts); err != nil {
		return bad("time %q: %v", ts, err)
	}
	for _, l := range lines[4:] {
		if l == "" {
			return bad("empty extension line")
		}
	}
	return c, nil
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, " +\n\t") || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name %q must be non-empty, without spaces or '+'", ErrMalformed, name)
	}
	for _, r := range name {
		if r < 0x20 {
			return fmt.Errorf("%w: name %q has a control character", ErrMalformed, name)
		}
	}
	return nil
}

// KeyID is the signed-note key ID of an Ed25519 key named name.
func KeyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', sigEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Signer signs checkpoints of one log with an Ed25519 key.
type Signer struct {
	name string
	key  crypto.Signer
	pub  ed25519.PublicKey
	id   uint32
}

// NewSigner returns a signer for the log (and key) named name. key must be
// an Ed25519 key (its Public() an ed25519.PublicKey): a file key or one in a
// token alike.
func NewSigner(name string, key crypto.Signer) (*Signer, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("checkpoint: signing key is %T, want an Ed25519 key", key.Public())
	}
	return &Signer{name: name, key: key, pub: pub, id: KeyID(name, pub)}, nil
}

// Name is the log's (and key's) name.
func (s *Signer) Name() string { return s.name }

// Public is the public key that verifies this signer's checkpoints.
func (s *Signer) Public() ed25519.PublicKey { return s.pub }

// Verifier returns the verifier of this signer's checkpoints.
func (s *Signer) Verifier() *Verifier { return &Verifier{name: s.name, pub: s.pub, id: s.id} }

// Sign returns the signed note of c; c.Origin is set to the signer's name.
func (s *Signer) Sign(c Checkpoint) (Signed, error) {
	c.Origin = s.name
	text, err := c.Text()
	if err != nil {
		return Signed{}, err
	}
	sig, err := s.key.Sign(rand.Reader, text, crypto.Hash(0))
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint: sign: %w", err)
	}
	return Signed{Checkpoint: c, text: text, sig: sig, name: s.name, id: s.id, pub: s.pub}, nil
}

// Signed is a checkpoint with its signature.
type Signed struct {
	Checkpoint
	text []byte
	sig  []byte
	name string
	id   uint32
	pub  ed25519.PublicKey
}

func (s Signed) pubEqual(p ed25519.PublicKey) bool { return s.pub.Equal(p) }

// PublicKey is the key the signature verified with.
func (s Signed) PublicKey() ed25519.PublicKey { return s.pub }

func keyHex(p ed25519.PublicKey) string { return fmt.Sprintf("%x", []byte(p)) }

// Note is the signed note: text, blank line, signature line.
func (s Signed) Note() []byte {
	var b bytes.Buffer
	b.Write(s.text)
	b.WriteString("\n— ")
	b.WriteString(s.name)
	b.WriteByte(' ')
	blob := binary.BigEndian.AppendUint32(nil, s.id)
	b.WriteString(base64.StdEncoding.EncodeToString(append(blob, s.sig...)))
	b.WriteByte('\n')
	return b.Bytes()
}

// Text is the signed note text: the exact bytes the signature covers.
func (s Signed) Text() []byte { return s.text }

// Signature is the raw Ed25519 signature (without the key ID).
func (s Signed) Signature() []byte { return s.sig }

// Verifier verifies checkpoints of one log signed by one Ed25519 key.
type Verifier struct {
	name string
	pub  ed25519.PublicKey
	id   uint32
}

// NewVerifier returns a verifier of the log (and key) named name.
func NewVerifier(name string, pub ed25519.PublicKey) (*Verifier, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("checkpoint: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return &Verifier{name: name, pub: pub, id: KeyID(name, pub)}, nil
}

// Name is the log's (and key's) name.
func (v *Verifier) Name() string { return v.name }

// Public is the verifying key.
func (v *Verifier) Public() ed25519.PublicKey { return v.pub }

// Verify parses note, checks that a signature line of this key verifies
// over its text and that the text is a checkpoint of this log. Signature
// lines of other keys are ignored (signed-note rules); one of this key that
// fails rejects the note.
func (v *Verifier) Verify(note []byte) (Signed, error) {
	if len(note) > MaxNoteBytes {
		return Signed{}, fmt.Errorf("%w: note is %d bytes, the limit is %d", ErrMalformed, len(note), MaxNoteBytes)
	}
	if !utf8.Valid(note) {
		return Signed{}, fmt.Errorf("%w: note is not UTF-8", ErrMalformed)
	}
	for _, b := range note {
		if b < 0x20 && b != '\n' {
			return Signed{}, fmt.Errorf("%w: note has a control character", ErrMalformed)
		}
	}
	i := bytes.LastIndex(note, []byte("\n\n"))
	if i < 0 || !bytes.HasSuffix(note, []byte("\n")) {
		return Signed{}, fmt.Errorf("%w: no blank line between text and signatures", ErrMalformed)
	}
	text, sigs := note[:i+1], note[i+2:]
	var found *Signed
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			return Signed{}, fmt.Errorf("%w: signature line %q does not start with \"— \"", ErrMalformed, line)
		}
		name, b64, ok := strings.Cut(rest, " ")
		blob, err := base64.StdEncoding.Strict().DecodeString(b64)
		if !ok || err != nil || len(blob) < 5 {
			return Signed{}, fmt.Errorf("%w: signature line %q", ErrMalformed, line)
		}
		if name != v.name || binary.BigEndian.Uint32(blob) != v.id {
			continue
		}
		if !ed25519.Verify(v.pub, text, blob[4:]) {
			return Signed{}, fmt.Errorf("%w: by key %s", ErrSignature, v.name)
		}
		found = &Signed{text: text, sig: blob[4:], name: v.name, id: v.id, pub: v.pub}
	}
	if found == nil {
		return Signed{}, fmt.Errorf("%w: no signature by key %s (%08x)", ErrSignature, v.name, v.id)
	}
	c, err := parseText(text)
	if err != nil {
		return Signed{}, err
	}
	if c.Origin != v.name {
		return Signed{}, fmt.Errorf("%w: checkpoint of log %q, want %q", ErrSignature, c.Origin, v.name)
	}
	found.Checkpoint = c
	return *found, nil
}

// Consistent reports whether next may extend prev as far as sizes and
// hashes show: the same log, not smaller, and the same hash at the same
// size. A larger next is only provably an extension to whoever replays the
// records between (the log's own verifier); this catches a truncated or
// forked log without them.
func Consistent(prev, next Checkpoint) error {
	switch {
	case prev.Origin != next.Origin:
		return fmt.Errorf("%w: log %q, earlier %q", ErrNotExtended, next.Origin, prev.Origin)
	case next.Size < prev.Size:
		return fmt.Errorf("%w: size %d is below the earlier %d (records removed)", ErrNotExtended, next.Size, prev.Size)
	case next.Size == prev.Size && !bytes.Equal(next.Hash, prev.Hash):
		return fmt.Errorf("%w: size %d has head %s, earlier %s (log rewritten)", ErrNotExtended, next.Size,
			base64.StdEncoding.EncodeToString(next.Hash), base64.StdEncoding.EncodeToString(prev.Hash))
	case next.Time.Before(prev.Time) && next.Size > prev.Size:
		return fmt.Errorf("%w: size %d signed at %s, before the earlier size %d at %s", ErrNotExtended,
			next.Size, next.Time.Format(time.RFC3339), prev.Size, prev.Time.Format(time.RFC3339))
	}
	return nil
}

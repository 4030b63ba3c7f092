package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/certgate/certgate/internal/atomicfile"
)

// Notes splits a checkpoint file (signed notes one after another, each
// ending with its signature lines) into its notes.
func Notes(data []byte) ([][]byte, error) {
	var (
		out  [][]byte
		cur  bytes.Buffer
		sigs bool // inside the current note's signature lines
	)
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, bytes.Clone(cur.Bytes()))
			cur.Reset()
		}
		sigs = false
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			return nil, fmt.Errorf("%w: line %d has no newline", ErrMalformed, i+1)
		}
		switch {
		case sigs && strings.HasPrefix(l, "— "):
		case sigs && l == "\n":
			// A blank line after the signatures: the next note starts.
			flush()
			continue
		case sigs:
			flush()
		case l == "\n" && cur.Len() > 0:
			sigs = true
		case l == "\n":
			continue
		}
		cur.WriteString(l)
	}
	if cur.Len() > 0 && !sigs {
		return nil, fmt.Errorf("%w: the last note has no signature", ErrMalformed)
	}
	flush()
	return out, nil
}

// Append appends s's note to the checkpoint file at path (created 0644),
// synced before it returns.
func Append(path string, s Signed) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := f.Write(append(s.Note(), '\n')); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: append to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: append to %s: %w", path, err)
	}
	return f.Close()
}

// MarshalPublicKey is the PEM "PUBLIC KEY" (SPKI) of pub, as openssl reads it.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM "PUBLIC KEY" holding an Ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PEM PUBLIC KEY block", ErrMalformed)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrMalformed, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: public key is %T, want Ed25519", ErrMalformed, k)
	}
	return pub, nil
}

// ErrKeyChanged is wrapped by [Witness.Observe] when the log presents a key
// other than the one the witness saw first.
var ErrKeyChanged = errors.New("checkpoint: the log's key changed")

// Witness remembers the newest checkpoint of one log it has seen, in a file
// (the note) and the log's key in path+".pub.pem", pinned on first sight.
// A gateway or an agent keeps one: if the server ever shows a checkpoint
// that does not extend the remembered one, its log was truncated or
// rewritten, and the remembered note is the evidence for
// certgate audit verify --checkpoint.
type Witness struct {
	path string
}

// NewWitness returns the witness kept at path.
func NewWitness(path string) *Witness { return &Witness{path: path} }

// Path is the witness's note file.
func (w *Witness) Path() string { return w.path }

// Last returns the remembered checkpoint, or ok false when there is none.
func (w *Witness) Last() (s Signed, ok bool, err error) {
	pubPEM, err := os.ReadFile(w.path + ".pub.pem")
	if errors.Is(err, fs.ErrNotExist) {
		return Signed{}, false, nil
	}
	if err != nil {
		return Signed{}, false, fmt.Errorf("checkpoint: witness: %w", err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		return Signed{}, false, fmt.Errorf("checkpoint: witness key %s.pub.pem: %w", w.path, err)
	}
	note, err := os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Signed{}, false, nil
	}
	if err != nil {
		return Signed{}, false, fmt.Errorf("checkpoint: witness: %w", err)
	}
	c, err := parseNoteUnverified(note)
	if err != nil {
		return Signed{}, false, fmt.Errorf("checkpoint: witness %s: %w", w.path, err)
	}
	v, err := NewVerifier(c.Origin, pub)
	if err != nil {
		return Signed{}, false, err
	}
	s, err = v.Verify(note)
	if err != nil {
		return Signed{}, false, fmt.Errorf("checkpoint: witness %s: %w", w.path, err)
	}
	return s, true, nil
}

// parseNoteUnverified reads the checkpoint text of a note without checking
// its signature, for the origin only.
func parseNoteUnverified(note []byte) (Checkpoint, error) {
	i := bytes.LastIndex(note, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: no blank line between text and signatures", ErrMalformed)
	}
	return parseText(note[:i+1])
}

// Observe checks note, signed by the log's key pub, against the remembered
// checkpoint and remembers it when it is newer. The error says why a note
// is refused: a bad signature, a changed key ([ErrKeyChanged]) or a
// checkpoint that does not extend the remembered one ([ErrNotExtended]).
// The remembered note is never replaced by one that failed.
func (w *Witness) Observe(name string, pub ed25519.PublicKey, note []byte) (Signed, error) {
	v, err := NewVerifier(name, pub)
	if err != nil {
		return Signed{}, err
	}
	s, err := v.Verify(note)
	if err != nil {
		return Signed{}, err
	}
	last, ok, err := w.Last()
	if err != nil {
		return Signed{}, err
	}
	if ok {
		if !last.pubEqual(pub) {
			return Signed{}, fmt.Errorf("%w: remembered %s, shown %s", ErrKeyChanged, keyHex(last.pub), keyHex(pub))
		}
		if err := Consistent(last.Checkpoint, s.Checkpoint); err != nil {
			return Signed{}, err
		}
		if s.Size == last.Size {
			return s, nil
		}
	} else if err := atomicfile.Write(w.path+".pub.pem", MarshalPublicKey(pub), 0o644); err != nil {
		return Signed{}, fmt.Errorf("checkpoint: witness: %w", err)
	}
	if err := atomicfile.Write(w.path, s.Note(), 0o644); err != nil {
		return Signed{}, fmt.Errorf("checkpoint: witness: %w", err)
	}
	return s, nil
}

package legacykey

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// PathPrefix is the identity path under which every key's identity lives:
// spiffe://TD/legacy/NAME.
const PathPrefix = "/legacy/"

// SaltSize is the length of an installation's salt.
const SaltSize = 32

// MinEntropyBits is the least entropy a key may carry.
const MinEntropyBits = 128

// MaxNameLen bounds a key's name (one identity path segment).
const MaxNameLen = 64

// MaxKeyLen bounds a key (an Authorization header value is rarely longer).
const MaxKeyLen = 512

// Auth kinds, as the access log, the metrics and X-Client-Auth name them.
const (
	AuthCertificate = "certificate"
	AuthLegacyKey   = "legacy-key"
)

// UsageSerialPrefix marks a usage row counted for a key rather than a
// certificate: its serial is UsageSerialPrefix + NAME.
const UsageSerialPrefix = "legacy-key:"

// ErrInvalid is wrapped by every refusal of a name or an import file.
var ErrInvalid = errors.New("legacy keys")

// CheckName refuses a name that is not one identity path segment of
// lowercase letters, digits, '.', '-' and '_' (at most MaxNameLen).
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %q is longer than %d characters", name, MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not an identity path segment", name)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return fmt.Errorf("name %q has invalid character %q (lowercase letters, digits, '.', '-', '_' only: it becomes the identity spiffe://TD/legacy/NAME)", name, c)
		}
	}
	return nil
}

// Identity is the identity a key of that name maps to.
func Identity(trustDomain, name string) string {
	return "spiffe://" + trustDomain + PathPrefix + name
}

// NameOf returns the key name of a legacy identity, or false.
func NameOf(identity string) (string, bool) {
	rest, ok := strings.CutPrefix(identity, "spiffe://")
	if !ok {
		return "", false
	}
	_, path, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	name, ok := strings.CutPrefix("/"+path, PathPrefix)
	if !ok || CheckName(name) != nil {
		return "", false
	}
	return name, true
}

// Hash is the hash a key is known by: SHA-256(salt || key).
func Hash(salt []byte, key string) [32]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(key))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// EntropyBits estimates the entropy of a key: its length times log2 of
// the smallest alphabet that holds it (hex 16, base32 32, base64url and
// base64 64, printable ASCII 95), but no more than its length times the
// empirical entropy of its characters scaled up by 4/3, so a key that
// repeats a few characters ("aaaa...", "abababab...") is not counted at
// its alphabet's rate. A random key passes the second bound easily: 32
// random hex characters show about 3.5 bits each, times 4/3 is over 4.
func EntropyBits(key string) float64 {
	alphabet := 95.0
	switch {
	case allIn(key, "0123456789abcdef") || allIn(key, "0123456789ABCDEF"):
		alphabet = 16
	case allIn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567=") || allIn(key, "abcdefghijklmnopqrstuvwxyz234567="):
		alphabet = 32
	case allIn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="):
		alphabet = 64
	}
	n := float64(len(key))
	byAlphabet := n * math.Log2(alphabet)
	counts := map[rune]int{}
	for _, c := range key {
		counts[c]++
	}
	var h float64
	for _, k := range counts {
		p := float64(k) / n
		h -= p * math.Log2(p)
	}
	return math.Min(byAlphabet, n*h*4/3)
}

func allIn(s, set string) bool {
	for _, c := range s {
		if !strings.ContainsRune(set, c) {
			return false
		}
	}
	return s != ""
}

// Entry is one key of an import file. Key is the key itself: it is hashed
// and dropped by the caller, never stored or printed.
type Entry struct {
	Line int
	Name string
	Key  string
}

// LineError is a refusal of one line of an import file; it never carries
// the key.
type LineError struct {
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// FileError lists every refused line of an import file: nothing of it is
// imported.
type FileError struct{ Lines []*LineError }

func (e *FileError) Error() string {
	msgs := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		msgs[i] = l.Error()
	}
	return fmt.Sprintf("legacy keys: import file refused, nothing imported:\n  %s", strings.Join(msgs, "\n  "))
}

func (e *FileError) Unwrap() error { return ErrInvalid }

// ParseFile reads an import file: lines "NAME KEY" (blank lines and lines
// starting with '#' are skipped), or a JSON array of {"name": ..., "key":
// ...} objects. Every line is checked (name, key length and entropy,
// duplicate names and keys); if any is refused the whole file is, with a
// *FileError naming each refused line and never a key.
func ParseFile(data []byte) ([]Entry, error) {
	var entries []Entry
	var errs []*LineError
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		var err *LineError
		entries, err = parseJSON(data)
		if err != nil {
			return nil, &FileError{Lines: []*LineError{err}}
		}
	} else {
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				errs = append(errs, &LineError{Line: i + 1, Msg: fmt.Sprintf("want \"NAME KEY\", got %d fields", len(f))})
				continue
			}
			entries = append(entries, Entry{Line: i + 1, Name: f[0], Key: f[1]})
		}
	}
	names := map[string]int{}
	keys := map[string]int{}
	for _, e := range entries {
		if err := CheckName(e.Name); err != nil {
			errs = append(errs, &LineError{Line: e.Line, Msg: err.Error()})
		} else if first, ok := names[e.Name]; ok {
			errs = append(errs, &LineError{Line: e.Line, Msg: fmt.Sprintf("name %q is already on line %d", e.Name, first)})
		} else {
			names[e.Name] = e.Line
		}
		if err := checkKey(e.Name, e.Key); err != nil {
			errs = append(errs, &LineError{Line: e.Line, Msg: err.Error()})
		} else if first, ok := keys[e.Key]; ok {
			errs = append(errs, &LineError{Line: e.Line, Msg: fmt.Sprintf("the key of %q is the same as the key on line %d: one key, one client", e.Name, first)})
		} else {
			keys[e.Key] = e.Line
		}
	}
	if len(errs) > 0 {
		return nil, &FileError{Lines: errs}
	}
	if len(entries) == 0 {
		return nil, &FileError{Lines: []*LineError{{Line: 1, Msg: "no keys in the file"}}}
	}
	return entries, nil
}

func checkKey(name, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("the key of %q is empty", name)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("the key of %q is longer than %d characters", name, MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("the key of %q has a character that is not printable ASCII at position %d (a key travels in an HTTP header)", name, i+1)
		}
	}
	if bits := EntropyBits(key); bits < MinEntropyBits {
		return fmt.Errorf("the key of %q carries about %d bits of entropy, under the %d required: a short or patterned key can be guessed; rotate it to a random one first (e.g. openssl rand -hex 32)",
			name, int(bits), MinEntropyBits)
	}
	return nil
}

// parseJSON reads a JSON array of {"name","key"} objects, each with the
// line it starts on.
func parseJSON(data []byte) ([]Entry, *LineError) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	if _, err := dec.Token(); err != nil {
		return nil, &LineError{Line: lineAt(dec.InputOffset()), Msg: "not a JSON array: " + err.Error()}
	}
	var out []Entry
	for dec.More() {
		// The object starts at the first non-space byte after the offset.
		off := dec.InputOffset()
		for off < int64(len(data)) && (data[off] == ' ' || data[off] == '\n' || data[off] == '\r' || data[off] == '\t' || data[off] == ',') {
			off++
		}
		var o struct {
			Name *string `json:"name"`
			Key  *string `json:"key"`
		}
		if err := dec.Decode(&o); err != nil {
			return nil, &LineError{Line: lineAt(off), Msg: "bad JSON object: " + jsonMsg(err)}
		}
		if o.Name == nil || o.Key == nil {
			return nil, &LineError{Line: lineAt(off), Msg: `each object needs "name" and "key"`}
		}
		out = append(out, Entry{Line: lineAt(off), Name: *o.Name, Key: *o.Key})
	}
	if _, err := dec.Token(); err != nil {
		return nil, &LineError{Line: lineAt(dec.InputOffset()), Msg: "bad JSON: " + jsonMsg(err)}
	}
	return out, nil
}

// jsonMsg is a decoding error without the value it quotes, which could be
// a key.
func jsonMsg(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error"
	}
	if strings.Contains(err.Error(), "unknown field") {
		return err.Error()
	}
	return "cannot decode"
}

// Key is one key a gateway accepts.
type Key struct {
	Hash     [32]byte
	Name     string
	Identity string
	Sunset   time.Time
	// Since is when the key was imported, the Deprecation date a response
	// names.
	Since time.Time
}

// Set is an immutable set of keys, by hash, for a gateway.
type Set struct {
	salt []byte
	// slots index keys by the first bits of their hash: numBuckets
	// buckets of width slots each, padded with -1, in an array rather
	// than a map (a map probe differs between a hit and a miss), so that
	// every lookup compares exactly width hashes.
	slots []int32
	width int
	keys  []Key
}

// numBuckets: 4096 buckets hold a few thousand keys with a handful of
// slots each.
const numBuckets = 4096

// NewSet builds a set. A nil *Set holds nothing.
func NewSet(salt []byte, keys []Key) *Set {
	s := &Set{salt: append([]byte(nil), salt...), keys: append([]Key(nil), keys...), width: 1}
	var buckets [numBuckets][]int32
	for i, k := range s.keys {
		b := bucketOf(&k.Hash)
		buckets[b] = append(buckets[b], int32(i))
		s.width = max(s.width, len(buckets[b]))
	}
	s.slots = make([]int32, numBuckets*s.width)
	for b := range buckets {
		for j := range s.width {
			s.slots[b*s.width+j] = -1
			if j < len(buckets[b]) {
				s.slots[b*s.width+j] = buckets[b][j]
			}
		}
	}
	return s
}

func bucketOf(h *[32]byte) int { return int(binary.BigEndian.Uint16(h[:2])) % numBuckets }

// Len is how many keys the set holds.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// dummyKey fills an empty slot, so a miss compares and copies as much as a
// hit.
var dummyKey Key

// Lookup returns the key presented, if the set holds it. See the package
// comment for why it takes the same time for a wrong key and a right one.
func (s *Set) Lookup(key string) (Key, bool) {
	if s == nil {
		return Key{}, false
	}
	h := Hash(s.salt, key)
	b := bucketOf(&h) * s.width
	found := -1
	for _, i := range s.slots[b : b+s.width] {
		kh := &dummyKey.Hash
		if i >= 0 {
			kh = &s.keys[i].Hash
		}
		eq := subtle.ConstantTimeCompare(h[:], kh[:])
		found = subtle.ConstantTimeSelect(eq, int(i), found)
	}
	k := &dummyKey
	if found >= 0 {
		k = &s.keys[found]
	}
	out := *k
	return out, found >= 0
}

// FromAuthorization returns the key of an Authorization header value:
// "Bearer KEY" (scheme case-insensitive), or the value as it is when it
// has no scheme.
func FromAuthorization(v string) string {
	if scheme, rest, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

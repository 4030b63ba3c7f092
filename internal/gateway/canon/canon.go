package canon

import (
	"unicode/utf8"
)

// EscapedSlashes is what [Policy.Path] does with %2F.
type EscapedSlashes uint8

// The actions on an encoded slash; the names are those of the config.
const (
	// EscapedSlashesReject refuses a path with %2F (the default).
	EscapedSlashesReject EscapedSlashes = iota
	// EscapedSlashesDecode turns %2F into '/' before anything else, so
	// the path is routed and forwarded with real slashes (Envoy's
	// UNESCAPE_AND_FORWARD).
	EscapedSlashesDecode
	// EscapedSlashesKeep forwards %2F as it came, for upstreams that take
	// it as data (an ID with a slash in it); routes still match it as a
	// slash, so a decoding upstream cannot be reached past a route.
	EscapedSlashesKeep
)

// RepeatedSlashes is what [Policy.Path] does with an empty segment ("//").
type RepeatedSlashes uint8

// The actions on repeated slashes.
const (
	// RepeatedSlashesMerge merges them into one (the default, as nginx's
	// merge_slashes on and Envoy's merge_slashes).
	RepeatedSlashesMerge RepeatedSlashes = iota
	// RepeatedSlashesReject refuses the path.
	RepeatedSlashesReject
)

// Semicolons is what [Policy.Path] does with a ';' in a path segment.
type Semicolons uint8

// The actions on path parameters.
const (
	// SemicolonsReject refuses a path with ';' (the default, as Spring's
	// StrictHttpFirewall does).
	SemicolonsReject Semicolons = iota
	// SemicolonsAllow forwards ";name=value" parameters, and routes match
	// each segment by its name without them, as a servlet container reads
	// the path ("/admin;x=1" is "/admin" to Tomcat).
	SemicolonsAllow
)

// Policy is how ambiguous paths are treated. The zero Policy is the safe
// default: encoded slashes, repeated slashes merged, no ';'.
type Policy struct {
	EscapedSlashes  EscapedSlashes
	RepeatedSlashes RepeatedSlashes
	Semicolons      Semicolons
}

// Error is a request the canonicalizer refuses: the gateway answers 400.
type Error struct {
	Reason string // short and stable, for the access log: "path_dot_segment"
	Msg    string // safe to show to the client
}

func (e *Error) Error() string { return e.Msg }

func refuse(reason, msg string) *Error { return &Error{Reason: reason, Msg: msg} }

// The refusals.
var (
	ErrBadChar          = refuse("path_bad_char", "request path has a character that must be percent-encoded")
	ErrBadPercent       = refuse("path_bad_percent", "request path has a '%' not followed by two hex digits")
	ErrBackslash        = refuse("path_backslash", "request path has a backslash, raw or encoded")
	ErrEncodedSlash     = refuse("path_encoded_slash", "request path has an encoded slash (%2F)")
	ErrEncodedSemicolon = refuse("path_encoded_semicolon", "request path has an encoded semicolon (%3B)")
	ErrSemicolon        = refuse("path_semicolon", "request path has a ';' (path parameters are not accepted)")
	ErrDoubleEncoded    = refuse("path_double_encoded", "request path is percent-encoded twice (%25 followed by an encoding)")
	ErrControl          = refuse("path_control", "request path has a control character or NUL, raw or encoded")
	ErrInvalidUTF8      = refuse("path_invalid_utf8", "request path decodes to invalid or overlong UTF-8")
	ErrDotSegment       = refuse("path_dot_segment", "request path has a '.' or '..' segment, raw or encoded")
	ErrEmptySegment     = refuse("path_empty_segment", "request path has an empty segment ('//')")
	ErrNotAbsolute      = refuse("path_not_absolute", "request path must start with '/'")
)

// Path is the canonical form of a request path.
type Path struct {
	// Forward is the path the gateway routes on and forwards: every
	// percent-encoded octet that decodes to a character allowed raw in a
	// path segment is decoded, every other one is upper-case %XX,
	// characters a path may not carry raw are encoded, repeated slashes
	// are merged. Two paths that any decoding upstream reads the same have
	// the same Forward.
	Forward string
	// Match is what routes are matched against: Forward, with %2F read as
	// '/' (EscapedSlashesKeep) and ";params" dropped from each segment
	// (SemicolonsAllow). Without those it is Forward.
	Match string
}

// pcharTable marks the bytes a path segment may carry raw and that the
// canonical form carries raw (RFC 3986 pchar: unreserved, sub-delims, ':'
// and '@'), without ';', which has a policy of its own.
var pcharTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,=:@" {
		t[c] = true
	}
	return t
}()

// lenientTable marks bytes clients send raw in paths though RFC 3986
// wants them encoded; they are accepted and encoded in the canonical form.
var lenientTable = func() (t [256]bool) {
	for _, c := range "\"<>[]^`{|}" {
		t[c] = true
	}
	return t
}()

const hexUpper = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// fastOK reports whether raw is already canonical and needs no work: only
// raw pchar bytes and single slashes, no dot segment. Nearly every path
// is, and takes this path without allocating.
func fastOK(raw string) bool {
	prev := byte('/')
	seg := 1
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		if c == '/' {
			if prev == '/' || isDots(raw[seg:i]) {
				return false
			}
			seg = i + 1
		} else if !pcharTable[c] {
			return false
		}
		prev = c
	}
	return !isDots(raw[seg:])
}

func isDots(s string) bool { return s == "." || s == ".." }

// Path canonicalizes raw, the path of an origin-form request target
// (without the query), or says why it cannot be made unambiguous.
//
// The checks run on the path as an upstream that percent-decodes it sees
// it, so that no encoding hides what they refuse: a dot segment ("." or
// "..", or a segment whose name before ';' is one, raw or encoded), a
// backslash, a control character or NUL, invalid or overlong UTF-8, an
// encoded ';', a second layer of encoding ("%252e"), and, by the policy,
// encoded slashes, empty segments and ';'.
func (p Policy) Path(raw string) (Path, *Error) {
	if len(raw) == 0 || raw[0] != '/' {
		return Path{}, ErrNotAbsolute
	}
	if fastOK(raw) {
		return Path{Forward: raw, Match: raw}, nil
	}
	// Decode once, remembering where an encoded slash was.
	dec := make([]byte, 0, len(raw))
	var encSlash []bool // parallel to dec, only with EscapedSlashesKeep
	anySemicolon, anyEncSlash := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		wasSlash := false
		switch {
		case c == '%':
			if i+2 >= len(raw) {
				return Path{}, ErrBadPercent
			}
			h, ok1 := unhex(raw[i+1])
			l, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return Path{}, ErrBadPercent
			}
			c = h<<4 | l
			i += 2
			switch c {
			case '/':
				switch p.EscapedSlashes {
				case EscapedSlashesReject:
					return Path{}, ErrEncodedSlash
				case EscapedSlashesKeep:
					wasSlash, anyEncSlash = true, true
				}
			case ';':
				return Path{}, ErrEncodedSemicolon
			}
		case c == '\\':
			return Path{}, ErrBackslash
		case c == ';':
			if p.Semicolons == SemicolonsReject {
				return Path{}, ErrSemicolon
			}
			anySemicolon = true
		case c == '/', pcharTable[c], lenientTable[c]:
		default:
			return Path{}, ErrBadChar
		}
		if anyEncSlash && encSlash == nil {
			encSlash = make([]bool, len(dec), len(raw))
		}
		dec = append(dec, c)
		if encSlash != nil {
			encSlash = append(encSlash, wasSlash)
		}
	}
	// What a decoding upstream sees must be unambiguous too.
	for i, c := range dec {
		switch {
		case c < 0x20 || c == 0x7f:
			return Path{}, ErrControl
		case c == '\\':
			return Path{}, ErrBackslash
		case c == '%':
			if i+2 < len(dec) {
				if _, ok := unhex(dec[i+1]); ok {
					if _, ok := unhex(dec[i+2]); ok {
						return Path{}, ErrDoubleEncoded
					}
				}
			}
		}
	}
	if !utf8.Valid(dec) {
		return Path{}, ErrInvalidUTF8
	}
	// Segments, split at every slash, encoded or not.
	seg := 1
	for i := 1; i <= len(dec); i++ {
		if i < len(dec) && dec[i] != '/' {
			continue
		}
		s := dec[seg:i]
		if j := indexByte(s, ';'); j >= 0 {
			s = s[:j]
		}
		if isDots(string(s)) {
			return Path{}, ErrDotSegment
		}
		if i < len(dec) && i == seg {
			// An empty segment: "//" (encoded or not), or ";x" alone is
			// not one, it has a parameter.
			if p.RepeatedSlashes == RepeatedSlashesReject || encSlash != nil && (encSlash[i] || encSlash[i-1]) {
				return Path{}, ErrEmptySegment
			}
		}
		seg = i + 1
	}
	// Encode the canonical form.
	fwd := make([]byte, 0, len(raw)+8)
	for i, c := range dec {
		switch {
		case encSlash != nil && encSlash[i]:
			fwd = append(fwd, "%2F"...)
		case c == '/':
			if len(fwd) > 0 && fwd[len(fwd)-1] == '/' {
				continue // merged
			}
			fwd = append(fwd, '/')
		case pcharTable[c] || c == ';':
			fwd = append(fwd, c)
		default:
			fwd = append(fwd, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	out := Path{Forward: string(fwd)}
	out.Match = out.Forward
	if anyEncSlash || anySemicolon {
		out.Match = matchForm(dec)
	}
	return out, nil
}

// matchForm builds the Match path: slashes real and encoded alike, each
// segment without its ";parameters", everything else encoded as in
// Forward.
func matchForm(dec []byte) string {
	m := make([]byte, 0, len(dec)+8)
	inParams := false
	for _, c := range dec {
		switch {
		case c == '/':
			inParams = false
			if len(m) > 0 && m[len(m)-1] == '/' {
				continue
			}
			m = append(m, '/')
		case inParams:
		case c == ';':
			inParams = true
		case pcharTable[c]:
			m = append(m, c)
		default:
			m = append(m, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(m)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

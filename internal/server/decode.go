package server

import (
	"bytes"
	"io"
)

// decodeStrings is decode for the enrollment and renewal requests, objects
// of at most two string fields (names, with their destinations fields; an
// empty name is unused), without encoding/json's reflection in the common
// case: the whole body is read (within the handler's MaxBytesReader) and
// taken as is when it is exactly one object of distinct, exactly named
// fields whose values are strings of ASCII with the escapes \" \\ \/ \b
// \f \n \r \t only, and nothing but JSON whitespace around it. That is
// a subset of what decodeJSON accepts, and for it decodeJSON gives the same
// values (TestDecodeStringsDifferential, FuzzDecodeStrings). Anything else,
// including a body that could not be read to its end, goes to decodeJSON
// over the same bytes followed by the same read error, so it is accepted
// or refused, with the same answer, as before.
func decodeStrings(body io.Reader, v any, names [2]string, fields [2]*string) error {
	data, err := io.ReadAll(body)
	if err == nil {
		var vals [2]string
		if parseStrings(data, &names, &vals) {
			for i, f := range fields {
				if f != nil && names[i] != "" {
					*f = vals[i]
				}
			}
			return nil
		}
	}
	var rest io.Reader = bytes.NewReader(data)
	if err != nil {
		rest = io.MultiReader(rest, errReader{err})
	}
	return decodeJSON(rest, v)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// parseStrings parses data as described at decodeStrings into vals (by
// names' order); false means "not in the subset", not "invalid".
func parseStrings(data []byte, names *[2]string, vals *[2]string) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	var seen [2]bool
	for {
		i = skipSpace(data, i+1)
		// A key.
		if i >= len(data) || data[i] != '"' {
			return false
		}
		end := bytes.IndexByte(data[i+1:], '"')
		if end < 0 {
			return false
		}
		key := data[i+1 : i+1+end]
		k := -1
		for n := range names {
			if names[n] != "" && string(key) == names[n] {
				k = n
			}
		}
		if k < 0 || seen[k] {
			return false
		}
		seen[k] = true
		i = skipSpace(data, i+1+end+1)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		// Its value, a string.
		if i >= len(data) || data[i] != '"' {
			return false
		}
		val, next, ok := parseString(data, i+1)
		if !ok {
			return false
		}
		vals[k] = val
		i = skipSpace(data, next)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			continue
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// parseString parses the string whose opening quote is before data[i]; next
// is past its closing quote.
func parseString(data []byte, i int) (s string, next int, ok bool) {
	start := i
	var buf []byte // nil while there was no escape
	for ; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			if buf == nil {
				return string(data[start:i]), i + 1, true
			}
			return string(buf), i + 1, true
		case c < 0x20 || c >= 0x80:
			return "", 0, false
		case c == '\\':
			if buf == nil {
				buf = append(make([]byte, 0, len(data)-start), data[start:i]...)
			}
			i++
			if i >= len(data) {
				return "", 0, false
			}
			switch data[i] {
			case '"', '\\', '/':
				buf = append(buf, data[i])
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			default:
				return "", 0, false
			}
		default:
			if buf != nil {
				buf = append(buf, c)
			}
		}
	}
	return "", 0, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

package syslog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Parse reads one RFC 5424 message, strictly: the form [Message.Append]
// writes (version 1, RFC 3339 timestamps, escaped PARAM-VALUEs). Msg
// aliases b. It is for tests and receivers, not the sending path.
func Parse(b []byte) (Message, error) {
	var m Message
	p := parser{b: b}
	if !p.eat('<') {
		return m, p.errf("missing '<'")
	}
	pri, ok := p.int(3)
	if !ok || pri > 191 || !p.eat('>') {
		return m, p.errf("bad PRI")
	}
	m.Facility, m.Severity = Facility(pri/8), Severity(pri%8)
	if !p.eat('1') || !p.eat(' ') {
		return m, p.errf("version is not 1")
	}
	ts, ok := p.field(64)
	if !ok {
		return m, p.errf("bad TIMESTAMP")
	}
	if ts != "-" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || strings.ContainsAny(ts, "tz") {
			return m, p.errf("bad TIMESTAMP %q", ts)
		}
		if i := strings.IndexByte(ts, '.'); i >= 0 {
			digits := len(ts[i+1:]) - len(strings.TrimLeft(ts[i+1:], "0123456789"))
			if digits < 1 || digits > 6 {
				return m, p.errf("TIMESTAMP %q has %d fraction digits, not 1 to 6", ts, digits)
			}
		}
		m.Time = t
	}
	for _, f := range [...]struct {
		dst *string
		max int
	}{{&m.Hostname, MaxHostname}, {&m.AppName, MaxAppName}, {&m.ProcID, MaxProcID}, {&m.MsgID, MaxMsgID}} {
		v, ok := p.field(f.max)
		if !ok {
			return m, p.errf("bad header field")
		}
		if v != "-" {
			*f.dst = v
		}
	}
	if p.eat('-') {
	} else {
		for p.peek() == '[' {
			p.i++
			var e SDElement
			id, ok := p.sdName()
			if !ok {
				return m, p.errf("bad SD-ID")
			}
			e.ID = id
			for p.eat(' ') {
				name, ok := p.sdName()
				if !ok || !p.eat('=') || !p.eat('"') {
					return m, p.errf("bad SD-PARAM")
				}
				v, ok := p.paramValue()
				if !ok {
					return m, p.errf("bad PARAM-VALUE")
				}
				e.Params = append(e.Params, SDParam{name, v})
			}
			if !p.eat(']') {
				return m, p.errf("unterminated SD-ELEMENT")
			}
			m.StructuredData = append(m.StructuredData, e)
		}
		if len(m.StructuredData) == 0 {
			return m, p.errf("bad STRUCTURED-DATA")
		}
	}
	if p.i == len(b) {
		return m, nil
	}
	if !p.eat(' ') {
		return m, p.errf("junk after STRUCTURED-DATA")
	}
	if p.i < len(b) {
		m.Msg = b[p.i:]
	}
	return m, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrInvalid, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) int(max int) (int, bool) {
	start := p.i
	for p.i < len(p.b) && p.i-start < max && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == start || (p.i-start > 1 && p.b[start] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(string(p.b[start:p.i]))
	return n, err == nil
}

// field reads PRINTUSASCII up to a space, which it consumes.
func (p *parser) field(max int) (string, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= 33 && p.b[p.i] <= 126 {
		p.i++
	}
	if p.i == start || p.i-start > max || !p.eat(' ') {
		return "", false
	}
	return string(p.b[start : p.i-1]), true
}

func (p *parser) sdName() (string, bool) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			break
		}
		p.i++
	}
	if p.i == start || p.i-start > MaxSDName {
		return "", false
	}
	return string(p.b[start:p.i]), true
}

// paramValue reads up to the closing '"', undoing the escapes of '"', '\'
// and ']' (a backslash before anything else stays, as RFC 5424 says).
func (p *parser) paramValue() (string, bool) {
	var sb strings.Builder
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			s := sb.String()
			return s, utf8.ValidString(s)
		case c == ']':
			return "", false // must be escaped
		case c == '\\' && p.i+1 < len(p.b) && (p.b[p.i+1] == '"' || p.b[p.i+1] == '\\' || p.b[p.i+1] == ']'):
			sb.WriteByte(p.b[p.i+1])
			p.i += 2
		default:
			sb.WriteByte(c)
			p.i++
		}
	}
	return "", false
}

package accesslog

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Kinds of entries.
const (
	KindHTTP      = "http"
	KindTCP       = "tcp"
	KindHandshake = "handshake"
)

// Schema is the version of the line format, written first on every line
// as "schema". It changes when a field is renamed, removed or changes
// type; adding a field does not change it (readers ignore unknown fields).
// docs/gateway.md ("The access log") documents every field.
const Schema = 1

// RequestID identifies one request: the gateway mints it (see
// internal/gateway), logs it as 32 lowercase hex digits and forwards it
// upstream as X-Request-Id. The zero value is "none".
type RequestID [16]byte

// AppendHex appends id as 32 lowercase hex digits.
func (id *RequestID) AppendHex(b []byte) []byte {
	for _, c := range id {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// Entry is one access log line. Zero fields are left out, except decision.
type Entry struct {
	Time        time.Time
	RequestID   RequestID
	Kind        string
	Identity    string
	Serial      string
	Fingerprint string // SHA-256 of the leaf, lowercase hex
	// Auth is "legacy-key" for a request authenticated by a legacy static
	// API key (Serial is then legacy-key:NAME); empty otherwise.
	Auth        string
	Client      string // remote address
	TLSVersion  string
	Resumed     bool
	Method      string
	Host        string
	Path        string
	Route       string
	Decision    string // "allow" or "deny"
	Reason      string
	Status      int
	BytesIn     int64
	BytesOut    int64
	Duration    time.Duration
	Upstream    time.Duration // time to the upstream's response header
	UpstreamURL string        // the upstream the request was forwarded to
	Error       string
}

// AppendJSON appends e as one JSON object and a newline.
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, Schema, 10)
	b = append(b, `,"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, '"')
	b = appendField(b, "kind", e.Kind)
	if e.RequestID != (RequestID{}) {
		b = append(b, `,"request_id":"`...)
		b = e.RequestID.AppendHex(b)
		b = append(b, '"')
	}
	b = appendField(b, "identity", e.Identity)
	b = appendField(b, "serial", e.Serial)
	b = appendField(b, "fingerprint", e.Fingerprint)
	b = appendField(b, "auth", e.Auth)
	b = appendField(b, "client", e.Client)
	b = appendField(b, "tls_version", e.TLSVersion)
	if e.TLSVersion != "" {
		b = append(b, `,"resumed":`...)
		b = strconv.AppendBool(b, e.Resumed)
	}
	b = appendField(b, "method", e.Method)
	b = appendField(b, "host", e.Host)
	b = appendField(b, "path", e.Path)
	b = appendField(b, "route", e.Route)
	b = append(b, `,"decision":`...)
	b = appendString(b, e.Decision)
	b = appendField(b, "reason", e.Reason)
	if e.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(e.Status), 10)
	}
	if e.Kind != KindHandshake {
		b = append(b, `,"bytes_in":`...)
		b = strconv.AppendInt(b, e.BytesIn, 10)
		b = append(b, `,"bytes_out":`...)
		b = strconv.AppendInt(b, e.BytesOut, 10)
	}
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration)/1e6, 'f', 3, 64)
	if e.Upstream != 0 {
		b = append(b, `,"upstream_ms":`...)
		b = strconv.AppendFloat(b, float64(e.Upstream)/1e6, 'f', 3, 64)
	}
	b = appendField(b, "upstream", e.UpstreamURL)
	b = appendField(b, "error", e.Error)
	return append(b, "}\n"...)
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// timeLayout is the line's time: UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// appendTime appends t in UTC as timeLayout does, digit by digit: the
// layout interpreter of time.Time.AppendFormat was a fifth of the line's
// encoding.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends v (0 <= v < 10^width) in width decimal digits.
func appendDigits(b []byte, v, width int) []byte {
	n := len(b) + width
	b = append(b, "000000"[:width]...)
	for i := n - 1; i >= n-width; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// plainASCII marks the bytes appendString copies as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	// Identities, serials, addresses and paths are nearly always plain
	// ASCII: one table lookup a byte, one copy.
	i := 0
	for i < len(s) && plainASCII[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

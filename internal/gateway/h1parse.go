package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
)

// maxHeaders bounds the number of header fields in a request.
const maxHeaders = 128

// httpError is a request the gateway refuses before it reaches an
// upstream, with the status to answer and a reason for the log.
type httpError struct {
	status int
	reason string // short, stable, for the log: "smuggling_te_cl"
	msg    string // safe to show to the client
}

func (e *httpError) Error() string { return e.msg }

func badRequest(reason, format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, reason: reason, msg: fmt.Sprintf(format, args...)}
}

var (
	errHeaderTooLarge = &httpError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "header_too_large", msg: "request header too large"}
	errBadVersion     = &httpError{status: http.StatusHTTPVersionNotSupported, reason: "bad_version", msg: "HTTP version not supported"}
	errUnsupportedTE  = &httpError{status: http.StatusNotImplemented, reason: "unsupported_transfer_encoding", msg: "only Transfer-Encoding: chunked is supported"}
)

type header struct {
	name, value []byte
}

// request is a parsed HTTP/1.x request head. Its byte slices point into the
// connection's head buffer and are valid until the next request is read.
type request struct {
	method  string
	target  []byte
	path    []byte // target without the query
	minor   int    // 0 or 1
	host    []byte
	headers []header

	contentLength int64 // -1 when absent
	chunked       bool
	close         bool // the client asked to close after this request
	upgrade       bool // Connection: upgrade and Upgrade: websocket
	expect100     bool
	connTokens    [][]byte // header names listed in Connection
}

func (r *request) reset() {
	hs := r.headers[:0]
	ct := r.connTokens[:0]
	*r = request{headers: hs, connTokens: ct, contentLength: -1}
}

// readHead reads a request head (request line and headers, up to the empty
// line) into buf, bounded by max bytes, and returns it.
func readHead(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	lineStart, skipped := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return buf, errHeaderTooLarge
		}
		buf = append(buf, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return buf, err
		}
		if l := buf[lineStart:]; string(l) == "\r\n" || string(l) == "\n" {
			if lineStart > 0 {
				return buf, nil
			}
			// Blank lines before the request line are skipped (RFC 9112 2.2).
			if skipped++; skipped > 4 {
				return buf, badRequest("bad_request_line", "malformed request line")
			}
			buf = buf[:0]
			continue
		}
		lineStart = len(buf)
	}
}

// parseRequest parses head strictly. Anything a downstream parser could
// read differently is refused: conflicting or duplicate framing headers,
// obsolete line folding, whitespace before a colon, bare CR, control
// characters in values, unknown transfer codings.
func parseRequest(head []byte, r *request) *httpError {
	r.reset()
	line, rest := nextLine(head)
	if line == nil {
		return badRequest("bad_request_line", "malformed request line")
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return badRequest("bad_request_line", "malformed request line")
	}
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(method) {
		return badRequest("bad_method", "malformed method")
	}
	r.method = internMethod(method)
	switch string(version) {
	case "HTTP/1.1":
		r.minor = 1
	case "HTTP/1.0":
		r.minor = 0
	default:
		if bytes.HasPrefix(version, []byte("HTTP/")) {
			return errBadVersion
		}
		return badRequest("bad_request_line", "malformed request line")
	}
	if target[0] != '/' {
		return badRequest("bad_target", "request target must be a path starting with '/'")
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return badRequest("bad_target", "request target has an invalid character")
		}
	}
	r.target = target
	r.path = target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		r.path = target[:i]
	}
	if hasDotSegment(r.path) {
		return badRequest("bad_target", "request path has a '.' or '..' segment")
	}

	var nCL, nTE, nHost int
	for {
		line, rest = nextLine(rest)
		if line == nil {
			return badRequest("bad_header", "malformed header line")
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obs_fold", "obsolete line folding is not allowed")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("bad_header", "malformed header line")
		}
		name := line[:colon]
		if !isToken(name) {
			return badRequest("bad_header", "malformed header name")
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return badRequest("bad_header", "header %q has a control character", name)
			}
		}
		if len(r.headers) >= maxHeaders {
			return errHeaderTooLarge
		}
		r.headers = append(r.headers, header{name: name, value: value})
		switch {
		case asciiEqualFold(name, "content-length"):
			nCL++
			if nCL > 1 {
				return badRequest("smuggling_duplicate_cl", "duplicate Content-Length header")
			}
			n, ok := parseContentLength(value)
			if !ok {
				return badRequest("bad_content_length", "invalid Content-Length")
			}
			r.contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			nTE++
			if nTE > 1 {
				return badRequest("smuggling_duplicate_te", "duplicate Transfer-Encoding header")
			}
			if !asciiEqualFold(value, "chunked") {
				return errUnsupportedTE
			}
			r.chunked = true
		case asciiEqualFold(name, "host"):
			nHost++
			if nHost > 1 {
				return badRequest("duplicate_host", "duplicate Host header")
			}
			if !validHost(value) {
				return badRequest("bad_host", "invalid Host header")
			}
			r.host = value
		case asciiEqualFold(name, "connection"):
			forEachToken(value, func(tok []byte) {
				switch {
				case asciiEqualFold(tok, "close"):
					r.close = true
				case asciiEqualFold(tok, "upgrade"):
					r.upgrade = true
				}
				r.connTokens = append(r.connTokens, tok)
			})
		case asciiEqualFold(name, "expect"):
			if !asciiEqualFold(value, "100-continue") {
				return &httpError{status: http.StatusExpectationFailed, reason: "bad_expect", msg: "unsupported Expect header"}
			}
			r.expect100 = true
		}
	}
	if len(rest) != 0 {
		return badRequest("bad_header", "malformed header block")
	}
	if r.chunked && nCL > 0 {
		return badRequest("smuggling_te_cl", "both Content-Length and Transfer-Encoding present")
	}
	if r.chunked && r.minor == 0 {
		return badRequest("bad_transfer_encoding", "Transfer-Encoding in an HTTP/1.0 request")
	}
	if r.minor == 1 && nHost == 0 {
		return badRequest("missing_host", "missing Host header")
	}
	if r.minor == 0 {
		keepAlive := false
		for _, t := range r.connTokens {
			keepAlive = keepAlive || asciiEqualFold(t, "keep-alive")
		}
		r.close = r.close || !keepAlive
	}
	if r.upgrade {
		r.upgrade = false
		for _, h := range r.headers {
			if asciiEqualFold(h.name, "upgrade") && asciiEqualFold(h.value, "websocket") {
				r.upgrade = true
			}
		}
	}
	return nil
}

// nextLine splits off one line ending in CRLF or LF. It returns nil for a
// line with a bare CR or without an end.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, rest
	}
	return line, rest
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokenTable marks the tchar bytes of RFC 9110.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// parseContentLength accepts 1 to 18 decimal digits and nothing else.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		if tok = trimOWS(tok); len(tok) > 0 {
			f(tok)
		}
	}
}

func validHost(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// hasDotSegment reports a "." or ".." path segment, also percent-encoded,
// which an upstream could resolve into a path no route was checked for.
func hasDotSegment(p []byte) bool {
	seg := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		s := p[seg:i]
		seg = i + 1
		if isDots(s) {
			return true
		}
	}
	return false
}

func isDots(s []byte) bool {
	dots := 0
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
		case len(s) >= 3 && s[0] == '%' && s[1] == '2' && (s[2] == 'e' || s[2] == 'E'):
			s = s[3:]
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}

func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(b)
}

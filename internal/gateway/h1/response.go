package h1

import (
	"bytes"
	"errors"
	"fmt"
)

// Response is a parsed HTTP/1.x response head; its slices point into the
// head buffer passed to [ParseResponse].
type Response struct {
	Status        int
	Minor         int
	Reason        []byte
	Headers       []Header
	ContentLength int64 // -1 when absent
	Chunked       bool
	Close         bool // the server closes after this response
}

// ErrBadResponse is wrapped by every response parsing error.
var ErrBadResponse = errors.New("malformed response from upstream")

// ParseResponse parses a response head strictly into r. Repeated
// Content-Length headers must agree; Transfer-Encoding other than one
// chunked, or with a Content-Length, is refused.
func ParseResponse(head []byte, r *Response) error {
	*r = Response{Headers: r.Headers[:0], ContentLength: -1}
	line, rest := nextLine(head)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("%w: status line %q", ErrBadResponse, truncate(line, 64))
	}
	switch line[7] {
	case '0':
		r.Minor = 0
	case '1':
		r.Minor = 1
	default:
		return fmt.Errorf("%w: status line %q", ErrBadResponse, truncate(line, 64))
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: status line %q", ErrBadResponse, truncate(line, 64))
		}
		r.Status = r.Status*10 + int(c-'0')
	}
	if r.Status < 100 {
		return fmt.Errorf("%w: status %d", ErrBadResponse, r.Status)
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return fmt.Errorf("%w: status line %q", ErrBadResponse, truncate(line, 64))
		}
		r.Reason = line[13:]
	}
	var nCL int
	for {
		line, rest = nextLine(rest)
		if line == nil {
			return fmt.Errorf("%w: header line", ErrBadResponse)
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || !IsToken(line[:colon]) {
			return fmt.Errorf("%w: header line %q", ErrBadResponse, truncate(line, 64))
		}
		name, value := line[:colon], TrimOWS(line[colon+1:])
		if !validValue(value) {
			return fmt.Errorf("%w: control character in header %q", ErrBadResponse, name)
		}
		if len(r.Headers) >= MaxHeaders {
			return fmt.Errorf("%w: more than %d headers", ErrBadResponse, MaxHeaders)
		}
		r.Headers = append(r.Headers, Header{Name: name, Value: value})
		switch {
		case EqualFold(name, "content-length"):
			n, ok := parseContentLength(value)
			if !ok || (nCL > 0 && n != r.ContentLength) {
				return fmt.Errorf("%w: invalid Content-Length", ErrBadResponse)
			}
			nCL++
			r.ContentLength = n
		case EqualFold(name, "transfer-encoding"):
			if !EqualFold(value, "chunked") || r.Chunked {
				return fmt.Errorf("%w: unsupported Transfer-Encoding %q", ErrBadResponse, value)
			}
			r.Chunked = true
		case EqualFold(name, "connection"):
			ForEachToken(value, func(tok []byte) {
				if EqualFold(tok, "close") {
					r.Close = true
				}
			})
		}
	}
	if r.Chunked && nCL > 0 {
		return fmt.Errorf("%w: both Content-Length and Transfer-Encoding", ErrBadResponse)
	}
	if r.Minor == 0 {
		r.Close = true
	}
	return nil
}

// Framing is how a message body is delimited.
type Framing uint8

// The framings of RFC 9112 section 6.3.
const (
	FramingNone    Framing = iota // no body
	FramingLength                 // Content-Length bytes
	FramingChunked                // chunked transfer coding
	FramingEOF                    // until the connection closes
)

// Framing returns how the body of a response to method is delimited
// (RFC 9112 section 6.3): none for HEAD, 1xx, 204 and 304.
func (r *Response) Framing(method string) Framing {
	switch {
	case method == "HEAD" || r.Status/100 == 1 || r.Status == 204 || r.Status == 304:
		return FramingNone
	case r.Chunked:
		return FramingChunked
	case r.ContentLength >= 0:
		return FramingLength
	}
	return FramingEOF
}

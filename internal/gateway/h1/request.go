package h1

import "bytes"

// Request is a parsed HTTP/1.x request head. Its byte slices point into the
// head buffer passed to [ParseRequest] and are valid until the next head is
// read into it.
type Request struct {
	Method string
	Target []byte // the request target in origin form (path and query)
	Path   []byte // Target without the query
	// Authority is the host of an absolute-form target
	// ("GET https://api.example.org/x"), nil for origin form. RFC 9112
	// section 3.2.2 has a server take it over Host; the caller decides
	// what to do when both are there and differ.
	Authority []byte
	Minor     int // 0 or 1
	Host      []byte
	Headers   []Header

	ContentLength int64 // -1 when absent
	Chunked       bool
	Close         bool // the client asked to close after this request
	Upgrade       bool // Connection: upgrade and Upgrade: websocket
	Expect100     bool
	ConnTokens    [][]byte // header names listed in Connection
}

// Reset clears r, keeping its slices' memory.
func (r *Request) Reset() {
	hs := r.Headers[:0]
	ct := r.ConnTokens[:0]
	*r = Request{Headers: hs, ConnTokens: ct, ContentLength: -1}
}

// HasBody reports whether the request carries a body.
func (r *Request) HasBody() bool { return r.Chunked || r.ContentLength > 0 }

// ParseRequest parses head strictly into r. Anything a downstream parser
// could read differently is refused: conflicting or duplicate framing
// headers, obsolete line folding, whitespace before a colon, bare CR,
// control characters in values, unknown transfer codings, a target that
// is not in origin form.
func ParseRequest(head []byte, r *Request) *Error {
	r.Reset()
	line, rest := nextLine(head)
	if line == nil {
		return BadRequest("bad_request_line", "malformed request line")
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return BadRequest("bad_request_line", "malformed request line")
	}
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !IsToken(method) {
		return BadRequest("bad_method", "malformed method")
	}
	r.Method = internMethod(method)
	switch string(version) {
	case "HTTP/1.1":
		r.Minor = 1
	case "HTTP/1.0":
		r.Minor = 0
	default:
		if bytes.HasPrefix(version, []byte("HTTP/")) {
			return ErrBadVersion
		}
		return BadRequest("bad_request_line", "malformed request line")
	}
	if target[0] != '/' {
		var ok bool
		if r.Authority, target, ok = absoluteForm(target); !ok {
			return BadRequest("bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path")
		}
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return BadRequest("bad_target", "request target has an invalid character")
		}
	}
	r.Target = target
	r.Path = target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		r.Path = target[:i]
	}

	var nCL, nTE, nHost int
	for {
		line, rest = nextLine(rest)
		if line == nil {
			return BadRequest("bad_header", "malformed header line")
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return BadRequest("obs_fold", "obsolete line folding is not allowed")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return BadRequest("bad_header", "malformed header line")
		}
		name := line[:colon]
		if !IsToken(name) {
			return BadRequest("bad_header", "malformed header name")
		}
		value := TrimOWS(line[colon+1:])
		if !validValue(value) {
			return BadRequest("bad_header", "header %q has a control character", name)
		}
		if len(r.Headers) >= MaxHeaders {
			return ErrHeaderTooLarge
		}
		r.Headers = append(r.Headers, Header{Name: name, Value: value})
		switch {
		case EqualFold(name, "content-length"):
			nCL++
			if nCL > 1 {
				return BadRequest("smuggling_duplicate_cl", "duplicate Content-Length header")
			}
			n, ok := parseContentLength(value)
			if !ok {
				return BadRequest("bad_content_length", "invalid Content-Length")
			}
			r.ContentLength = n
		case EqualFold(name, "transfer-encoding"):
			nTE++
			if nTE > 1 {
				return BadRequest("smuggling_duplicate_te", "duplicate Transfer-Encoding header")
			}
			if !EqualFold(value, "chunked") {
				return ErrUnsupportedTE
			}
			r.Chunked = true
		case EqualFold(name, "host"):
			nHost++
			if nHost > 1 {
				return BadRequest("duplicate_host", "duplicate Host header")
			}
			if !ValidHost(value) {
				return BadRequest("bad_host", "invalid Host header")
			}
			r.Host = value
		case EqualFold(name, "connection"):
			ForEachToken(value, func(tok []byte) {
				switch {
				case EqualFold(tok, "close"):
					r.Close = true
				case EqualFold(tok, "upgrade"):
					r.Upgrade = true
				}
				r.ConnTokens = append(r.ConnTokens, tok)
			})
		case EqualFold(name, "expect"):
			if !EqualFold(value, "100-continue") {
				return ErrBadExpect
			}
			r.Expect100 = true
		}
	}
	if len(rest) != 0 {
		return BadRequest("bad_header", "malformed header block")
	}
	if r.Chunked && nCL > 0 {
		return BadRequest("smuggling_te_cl", "both Content-Length and Transfer-Encoding present")
	}
	if r.Chunked && r.Minor == 0 {
		return BadRequest("bad_transfer_encoding", "Transfer-Encoding in an HTTP/1.0 request")
	}
	if r.Minor == 1 && nHost == 0 {
		return BadRequest("missing_host", "missing Host header")
	}
	if r.Minor == 0 {
		keepAlive := false
		for _, t := range r.ConnTokens {
			keepAlive = keepAlive || EqualFold(t, "keep-alive")
		}
		r.Close = r.Close || !keepAlive
	}
	if r.Upgrade {
		r.Upgrade = false
		for _, h := range r.Headers {
			if EqualFold(h.Name, "upgrade") && EqualFold(h.Value, "websocket") {
				r.Upgrade = true
			}
		}
	}
	return nil
}

// absoluteForm splits "http(s)://authority/path?query" into the
// authority and the origin-form rest, which must start with '/'.
func absoluteForm(t []byte) (authority, rest []byte, ok bool) {
	switch {
	case len(t) > 7 && EqualFold(t[:7], "http://"):
		t = t[7:]
	case len(t) > 8 && EqualFold(t[:8], "https://"):
		t = t[8:]
	default:
		return nil, nil, false
	}
	i := bytes.IndexByte(t, '/')
	if i <= 0 || !ValidHost(t[:i]) {
		return nil, nil, false
	}
	return t[:i], t[i:], true
}

// internMethod returns the common methods without allocating.
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

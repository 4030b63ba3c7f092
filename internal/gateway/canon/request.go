package canon

import "strings"

// standardMethods are the methods the gateway accepts without a route
// naming them: RFC 9110's (but CONNECT, which asks a proxy for a tunnel,
// and TRACE, which would echo the identity headers the gateway adds),
// PATCH (RFC 5789), WebDAV's (RFC 4918, 3253, 5323) and QUERY.
var standardMethods = []string{
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH", "QUERY",
}

// ErrUnknownMethod is a method the gateway does not know: it answers 501
// (RFC 9110 section 15.6.2) and forwards nothing.
var ErrUnknownMethod = &Error{Reason: "unknown_method", Msg: "request method not implemented by this gateway"}

// Methods is the set of methods the gateway accepts.
type Methods struct {
	list []string // upper case
}

// NewMethods returns the standard methods plus extra (those routes name).
func NewMethods(extra ...string) Methods {
	m := Methods{list: append([]string(nil), standardMethods...)}
	for _, e := range extra {
		e = strings.ToUpper(e)
		if _, ok := m.Canonical(e); !ok {
			m.list = append(m.list, e)
		}
	}
	return m
}

// Canonical returns the known method that equals method ignoring ASCII
// case, upper case: "get" is GET, for matching and forwarding alike, as
// upstreams that upper-case methods (Werkzeug, PHP) read it. It allocates
// nothing.
func (m Methods) Canonical(method string) (string, bool) {
	for _, k := range m.list {
		if len(k) == len(method) && equalFold(k, method) {
			return k, true
		}
	}
	return "", false
}

func equalFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ErrBadHost is a Host the gateway cannot read one way only.
var ErrBadHost = &Error{Reason: "bad_host", Msg: "invalid Host header"}

// Host returns the canonical form of a Host value: the name in lower case
// and without a trailing dot ("API.Example.org." is "api.example.org",
// as DNS and virtual hosts read it), the port kept. A host already
// canonical is returned as it is, without allocating.
func Host(h string) (string, *Error) {
	if h == "" {
		return "", nil
	}
	name, port := h, ""
	if h[0] == '[' {
		i := strings.IndexByte(h, ']')
		if i < 0 || (i+1 < len(h) && h[i+1] != ':') {
			return "", ErrBadHost
		}
		name, port = h[:i+1], h[i+1:]
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i:]
		if strings.IndexByte(port[1:], ':') >= 0 {
			return "", ErrBadHost
		}
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", ErrBadHost
		}
	}
	canonical := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
	}
	if strings.HasSuffix(name, ".") {
		canonical = false
	}
	if canonical {
		return h, nil
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || strings.HasSuffix(name, ".") {
		return "", ErrBadHost
	}
	return name + port, nil
}

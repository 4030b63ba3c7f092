package gateway

import (
	"net/http"
	"strings"

	"github.com/certgate/certgate/internal/gateway/canon"
	"github.com/certgate/certgate/internal/gateway/h1"
)

// canonicalRequest is a request in the one form the gateway authorizes
// and forwards (package canon): HTTP/1.1, HTTP/2, WebSocket upgrades and
// Explain all build it with [Config.canonicalize].
type canonicalRequest struct {
	method string // upper case, a known method
	host   string // lower case, no trailing dot, port kept; "" for none
	path   string // canon.Path.Forward: routed on, forwarded, logged
	match  string // canon.Path.Match: what routes match
	query  string // as sent, without '?'
	hasQ   bool   // the target had a '?'
}

// target is the canonical origin-form target: path and query.
func (r *canonicalRequest) target() string {
	if !r.hasQ {
		return r.path
	}
	return r.path + "?" + r.query
}

var errNotImplemented = &h1.Error{Status: http.StatusNotImplemented, Reason: canon.ErrUnknownMethod.Reason, Msg: canon.ErrUnknownMethod.Msg}

// canonicalize canonicalizes a request's method, host and origin-form
// target (path and query as sent), or refuses it: 501 for an unknown
// method, 400 for a host or path that cannot be made unambiguous.
func (cfg *Config) canonicalize(method, host, target string) (canonicalRequest, *h1.Error) {
	var r canonicalRequest
	var ok bool
	if r.method, ok = cfg.methods.Canonical(method); !ok {
		return r, errNotImplemented
	}
	var cerr *canon.Error
	if r.host, cerr = canon.Host(host); cerr != nil {
		return r, h1.BadRequest(cerr.Reason, "%s", cerr.Msg)
	}
	path := target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, r.query, r.hasQ = target[:i], target[i+1:], true
		for j := 0; j < len(r.query); j++ {
			if c := r.query[j]; c <= ' ' || c >= 0x7f || c == '#' {
				return r, h1.BadRequest("bad_target", "request query has an invalid character")
			}
		}
	}
	p, cerr := cfg.paths.Path(path)
	if cerr != nil {
		return r, h1.BadRequest(cerr.Reason, "%s", cerr.Msg)
	}
	r.path, r.match = p.Forward, p.Match
	return r, nil
}

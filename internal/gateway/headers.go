package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"github.com/certgate/certgate/internal/gateway/h1"
)

// Identity header names. Client-Cert and Client-Cert-Chain are RFC 9440;
// X-Forwarded-Client-Cert is Envoy's.
const (
	HeaderClientCert      = "Client-Cert"
	HeaderClientCertChain = "Client-Cert-Chain"
	HeaderXFCC            = "X-Forwarded-Client-Cert"
	HeaderIdentity        = "X-Client-Identity"
	HeaderSerial          = "X-Client-Cert-Serial"
)

// Forwarding headers the gateway sets on every request it forwards.
const (
	HeaderForwarded       = "Forwarded" // RFC 7239
	HeaderXForwardedFor   = "X-Forwarded-For"
	HeaderXForwardedProto = "X-Forwarded-Proto"
	HeaderXForwardedHost  = "X-Forwarded-Host"
	HeaderXRealIP         = "X-Real-IP"
)

// StrippedRequestHeaders lists, in the normalized form (lower case, '_'
// read as '-'), the client request headers the gateway never forwards: a
// client header whose name normalizes to one of these, or starts with
// "x-forwarded-", is removed. '_' is read as '-' because CGI and WSGI
// servers (wsgiref, Werkzeug, PHP) turn both into '_' and an upstream
// would otherwise see X_Client_Identity as the gateway's
// X-Client-Identity. The list: the identity headers the gateway sets
// (Client-Cert, Client-Cert-Chain, X-Forwarded-Client-Cert,
// X-Client-Identity, X-Client-Cert-Serial, whether or not a route sends
// them), the forwarding headers it sets itself (Forwarded, X-Real-IP and
// every X-Forwarded-*), and the hop-by-hop and framing headers of the
// client's connection (RFC 9110 section 7.6.1) that the gateway writes
// anew.
var StrippedRequestHeaders = []string{
	"client-cert", "client-cert-chain", "x-client-identity", "x-client-cert-serial",
	"forwarded", "x-real-ip", "x-forwarded-*",
	"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
	"proxy-authorization", "content-length", "host", "expect",
	"x-request-id",  // the gateway sets its own (requestid.go says why)
	"x-client-auth", // set on key-authenticated requests only (legacykey.go)
}

// strippedExact is StrippedRequestHeaders without the prefix entry.
var strippedExact = func() []string {
	var out []string
	for _, n := range StrippedRequestHeaders {
		if n != "x-forwarded-*" {
			out = append(out, n)
		}
	}
	return out
}()

// normalizedEqual reports whether name, lower-cased with '_' read as '-',
// equals norm (lower case, with '-').
func normalizedEqual(name []byte, norm string) bool {
	if len(name) != len(norm) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

// strippedRequestHeader reports whether a client header must not reach the
// upstream (StrippedRequestHeaders). It allocates nothing.
func strippedRequestHeader(name []byte) bool {
	const fwd = "x-forwarded-"
	if len(name) > len(fwd) && normalizedEqual(name[:len(fwd)], fwd) {
		return true
	}
	for _, s := range strippedExact {
		if normalizedEqual(name, s) {
			return true
		}
	}
	return false
}

var responseSkip = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Content-Length",
}

func skipRequestHeader(name []byte, connTokens [][]byte) bool {
	if strippedRequestHeader(name) {
		return true
	}
	for _, t := range connTokens {
		if h1.EqualFold(name, string(t)) {
			return true
		}
	}
	return false
}

func skipResponseHeader(name []byte) bool {
	for _, s := range responseSkip {
		if h1.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// appendUpstreamHead writes the request head the upstream receives: the
// client's request minus hop-by-hop and identity headers, plus the
// identity headers the route sends and the forwarding headers.
func (s *h1session) appendUpstreamHead(b []byte, rt *runtime, route *httpRoute) []byte {
	req := &s.req
	up := route.up
	cr := &s.cr
	b = append(b, cr.method...)
	b = append(b, ' ')
	b = append(b, up.basePath...)
	b = append(b, cr.path...)
	if cr.hasQ {
		b = append(b, '?')
		b = append(b, cr.query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if cr.host != "" {
		b = append(b, cr.host...)
	} else {
		b = append(b, up.hostName...)
	}
	b = append(b, "\r\n"...)
	for _, h := range req.Headers {
		if skipRequestHeader(h.Name, req.ConnTokens) {
			continue
		}
		// A certificate client of a route that takes legacy keys may still
		// send its key: it never reaches the upstream either.
		if route.legacy != nil && normalizedEqual(h.Name, route.legacy.norm) {
			continue
		}
		b = h1.AppendHeader(b, h.Name, h.Value)
	}
	b = appendIdentityHeaders(b, s.t.peer, route.hdr, rt.selfID)
	b = appendForwarding(b, s.t.peer, cr.host)
	b = append(b, "X-Request-Id: "...)
	b = s.entry.RequestID.AppendHex(b)
	b = append(b, "\r\n"...)
	if req.Upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	switch {
	case req.Chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case req.ContentLength >= 0:
		b = h1.AppendContentLength(b, req.ContentLength)
	}
	return append(b, "\r\n"...)
}

func appendIdentityHeaders(b []byte, p *peer, hs headerSet, selfID string) []byte {
	if hs.clientCert || hs.clientCertChain || hs.xfcc {
		p.identityHeaders(selfID)
	}
	if hs.clientCert {
		b = h1.AppendHeaderString(b, HeaderClientCert, p.clientCert.Value())
	}
	if hs.clientCertChain && p.clientCertChain.Value() != "" {
		b = h1.AppendHeaderString(b, HeaderClientCertChain, p.clientCertChain.Value())
	}
	if hs.xfcc {
		b = h1.AppendHeaderString(b, HeaderXFCC, p.xfcc.Value())
	}
	if hs.identity {
		b = h1.AppendHeaderString(b, HeaderIdentity, p.id)
	}
	if hs.serial {
		b = h1.AppendHeaderString(b, HeaderSerial, p.serial)
	}
	return b
}

// appendForwarding appends the forwarding headers: the client's address,
// https, and the host it asked for.
func appendForwarding(b []byte, p *peer, host string) []byte {
	ip := p.clientIP()
	b = h1.AppendHeaderString(b, HeaderXForwardedFor, ip)
	b = append(b, "X-Forwarded-Proto: https\r\n"...)
	if host != "" {
		b = h1.AppendHeaderString(b, HeaderXForwardedHost, host)
	}
	b = h1.AppendHeaderString(b, HeaderXRealIP, ip)
	b = append(b, "Forwarded: "...)
	b = appendForwardedValue(b, ip, host)
	return append(b, "\r\n"...)
}

// appendForwardedValue appends an RFC 7239 element: for=, proto=, host=,
// quoting what is not a token (an IPv6 address, a host with a port).
func appendForwardedValue(b []byte, ip, host string) []byte {
	b = append(b, "for="...)
	if strings.IndexByte(ip, ':') >= 0 {
		b = append(append(append(b, "\"["...), ip...), "]\""...)
	} else {
		b = append(b, ip...)
	}
	b = append(b, ";proto=https"...)
	if host != "" {
		b = append(b, ";host=\""...)
		b = append(b, host...)
		b = append(b, '"')
	}
	return b
}

// setForwarding is appendForwarding for an http.Header.
func setForwarding(h http.Header, p *peer, host string) {
	ip := p.clientIP()
	h[HeaderXForwardedFor] = []string{ip}
	h[HeaderXForwardedProto] = []string{"https"}
	if host != "" {
		h[HeaderXForwardedHost] = []string{host}
	}
	h[HeaderXRealIP] = []string{ip}
	h[HeaderForwarded] = []string{string(appendForwardedValue(nil, ip, host))}
}

// stripRequestHeaders removes from h what strippedRequestHeader says a
// client may not send, plus the headers its Connection header names.
func stripRequestHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
	for k := range h {
		if strippedRequestHeader([]byte(k)) {
			delete(h, k)
		}
	}
}

// setIdentityHeaders is appendIdentityHeaders for an http.Header from
// which stripRequestHeaders removed the client's copies.
func setIdentityHeaders(h http.Header, p *peer, hs headerSet, selfID string) {
	if hs.clientCert || hs.clientCertChain || hs.xfcc {
		p.identityHeaders(selfID)
	}
	if hs.clientCert {
		h[HeaderClientCert] = []string{p.clientCert.Value()}
	}
	if hs.clientCertChain && p.clientCertChain.Value() != "" {
		h[HeaderClientCertChain] = []string{p.clientCertChain.Value()}
	}
	if hs.xfcc {
		h[HeaderXFCC] = []string{p.xfcc.Value()}
	}
	if hs.identity {
		h[HeaderIdentity] = []string{p.id}
	}
	if hs.serial {
		h[HeaderSerial] = []string{p.serial}
	}
}

func (p *peer) clientIP() string {
	host, _, err := net.SplitHostPort(p.client)
	if err != nil {
		return p.client
	}
	return host
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errorJSON(code, msg string) []byte {
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{apiError{code, msg}})
	return b
}

// forbiddenJSON names the identity and the request, never the routes.
func forbiddenJSON(id, method, host, path string) []byte {
	return appendForbiddenJSON(nil, id, method, host, path)
}

// appendForbiddenJSON appends forbiddenJSON's body to dst: the bytes
// json.Marshal gives (TestForbiddenJSONIsMarshal), without its
// reflection and allocations when every string is plain ASCII (nearly
// always: identities, methods, canonical hosts and paths), by
// json.Marshal otherwise.
func appendForbiddenJSON(dst []byte, id, method, host, path string) []byte {
	if !plainJSON(id) || !plainJSON(method) || !plainJSON(host) || !plainJSON(path) {
		return append(dst, forbiddenJSONMarshal(id, method, host, path)...)
	}
	dst = append(dst, `{"error":{"code":"forbidden","message":"this identity is not allowed to make this request"},"identity":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","request":{"method":"`...)
	dst = append(dst, method...)
	dst = append(dst, `","host":"`...)
	dst = append(dst, host...)
	dst = append(dst, `","path":"`...)
	dst = append(dst, path...)
	return append(dst, `"}}`...)
}

func forbiddenJSONMarshal(id, method, host, path string) []byte {
	type reqInfo struct {
		Method string `json:"method"`
		Host   string `json:"host"`
		Path   string `json:"path"`
	}
	b, _ := json.Marshal(struct {
		Error    apiError `json:"error"`
		Identity string   `json:"identity"`
		Request  reqInfo  `json:"request"`
	}{apiError{"forbidden", "this identity is not allowed to make this request"}, id, reqInfo{method, host, path}})
	return b
}

// plainJSON reports whether json.Marshal writes s as it is between its
// quotes: printable ASCII without the characters it escapes (", \ and,
// with its HTML escaping, <, > and &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func codeFor(status int) string {
	switch status {
	case 400:
		return "bad_request"
	case 403:
		return "forbidden"
	case 408:
		return "request_timeout"
	case 417:
		return "expectation_failed"
	case 431:
		return "header_too_large"
	case 501:
		return "not_implemented"
	case 502:
		return "bad_gateway"
	case 504:
		return "gateway_timeout"
	case 505:
		return "http_version_not_supported"
	}
	return "error"
}

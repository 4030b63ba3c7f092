package gateway

import (
	"encoding/json"
	"net"
	"net/http"

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

// identityHeaderNames are removed from every client request, whatever the
// route sends, so an upstream never sees a client-made identity.
var identityHeaderNames = []string{HeaderClientCert, HeaderClientCertChain, HeaderXFCC, HeaderIdentity, HeaderSerial}

// hopByHop are the headers of one connection (RFC 9110 7.6.1), plus the
// framing and forwarding headers the gateway writes itself.
var requestSkip = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authorization", "Content-Length", "Host", "Expect", "X-Forwarded-For", "X-Forwarded-Proto",
	HeaderClientCert, HeaderClientCertChain, HeaderXFCC, HeaderIdentity, HeaderSerial,
}

var responseSkip = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Content-Length",
}

func skipRequestHeader(name []byte, connTokens [][]byte) bool {
	for _, s := range requestSkip {
		if h1.EqualFold(name, s) {
			return true
		}
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
		b = h1.AppendHeader(b, h.Name, h.Value)
	}
	b = appendIdentityHeaders(b, s.t.peer, route.hdr, rt.selfID)
	b = h1.AppendHeaderString(b, "X-Forwarded-For", s.t.peer.clientIP())
	b = append(b, "X-Forwarded-Proto: https\r\n"...)
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
		b = h1.AppendHeaderString(b, HeaderClientCert, p.clientCert)
	}
	if hs.clientCertChain && p.clientCertChain != "" {
		b = h1.AppendHeaderString(b, HeaderClientCertChain, p.clientCertChain)
	}
	if hs.xfcc {
		b = h1.AppendHeaderString(b, HeaderXFCC, p.xfcc)
	}
	if hs.identity {
		b = h1.AppendHeaderString(b, HeaderIdentity, p.id)
	}
	if hs.serial {
		b = h1.AppendHeaderString(b, HeaderSerial, p.serial)
	}
	return b
}

// setIdentityHeaders is appendIdentityHeaders for an http.Header.
func setIdentityHeaders(h http.Header, p *peer, hs headerSet, selfID string) {
	for _, n := range identityHeaderNames {
		delete(h, n)
	}
	if hs.clientCert || hs.clientCertChain || hs.xfcc {
		p.identityHeaders(selfID)
	}
	if hs.clientCert {
		h[HeaderClientCert] = []string{p.clientCert}
	}
	if hs.clientCertChain && p.clientCertChain != "" {
		h[HeaderClientCertChain] = []string{p.clientCertChain}
	}
	if hs.xfcc {
		h[HeaderXFCC] = []string{p.xfcc}
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

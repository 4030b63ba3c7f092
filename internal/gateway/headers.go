package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
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
		if asciiEqualFold(name, s) {
			return true
		}
	}
	for _, t := range connTokens {
		if asciiEqualFold(name, string(t)) {
			return true
		}
	}
	return false
}

func skipResponseHeader(name []byte) bool {
	for _, s := range responseSkip {
		if asciiEqualFold(name, s) {
			return true
		}
	}
	return false
}

func appendStatusLine(b []byte, status int, reason []byte) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if len(reason) > 0 {
		return append(append(b, reason...), "\r\n"...)
	}
	return append(append(b, http.StatusText(status)...), "\r\n"...)
}

func appendHeader(b, name, value []byte) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

func appendHeaderString(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// appendUpstreamHead writes the request head the upstream receives: the
// client's request minus hop-by-hop and identity headers, plus the
// identity headers the route sends and the forwarding headers.
func (s *h1session) appendUpstreamHead(b []byte, rt *runtime, route *httpRoute) []byte {
	req := &s.req
	up := route.up
	b = append(b, req.method...)
	b = append(b, ' ')
	b = append(b, up.basePath...)
	b = append(b, req.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if len(req.host) > 0 {
		b = append(b, req.host...)
	} else {
		b = append(b, up.hostName...)
	}
	b = append(b, "\r\n"...)
	for _, h := range req.headers {
		if skipRequestHeader(h.name, req.connTokens) {
			continue
		}
		b = appendHeader(b, h.name, h.value)
	}
	b = appendIdentityHeaders(b, s.t.peer, route.hdr, rt.selfID)
	b = appendHeaderString(b, "X-Forwarded-For", s.t.peer.clientIP())
	b = append(b, "X-Forwarded-Proto: https\r\n"...)
	if req.upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	switch {
	case req.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case req.contentLength >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.contentLength, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

func appendIdentityHeaders(b []byte, p *peer, hs headerSet, selfID string) []byte {
	if hs.clientCert || hs.clientCertChain || hs.xfcc {
		p.identityHeaders(selfID)
	}
	if hs.clientCert {
		b = appendHeaderString(b, HeaderClientCert, p.clientCert)
	}
	if hs.clientCertChain && p.clientCertChain != "" {
		b = appendHeaderString(b, HeaderClientCertChain, p.clientCertChain)
	}
	if hs.xfcc {
		b = appendHeaderString(b, HeaderXFCC, p.xfcc)
	}
	if hs.identity {
		b = appendHeaderString(b, HeaderIdentity, p.id)
	}
	if hs.serial {
		b = appendHeaderString(b, HeaderSerial, p.serial)
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

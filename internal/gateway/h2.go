package gateway

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/accesslog"
)

// h2server serves clients that negotiated HTTP/2. Requests go upstream
// through each upstream's http.Transport over HTTP/1.1.
type h2server struct {
	g      *Gateway
	srv    *http2.Server
	base   *http.Server
	mu     sync.Mutex
	closed bool
}

type trackedKey struct{}

func newH2Server(g *Gateway) *h2server {
	h := &h2server{g: g}
	rt := g.rt.Load()
	h.srv = &http2.Server{IdleTimeout: rt.cfg.timeouts.idle, MaxConcurrentStreams: 250}
	h.base = &http.Server{MaxHeaderBytes: rt.cfg.maxHeader, ReadHeaderTimeout: rt.cfg.timeouts.readHeader}
	return h
}

func (h *h2server) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
}

func (g *Gateway) serveH2(t *tracked) {
	ctx := context.WithValue(g.ctx, trackedKey{}, t)
	g.h2.srv.ServeConn(t.conn, &http2.ServeConnOpts{Context: ctx, BaseConfig: g.h2.base, Handler: http.HandlerFunc(g.h2.serveHTTP)})
}

func (h *h2server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	defer g.recoverHTTP2(r.RequestURI)
	t := r.Context().Value(trackedKey{}).(*tracked)
	p := t.peer
	rt := g.rt.Load()
	start := time.Now()
	e := &accesslog.Entry{
		Time: start, Kind: accesslog.KindHTTP, Identity: p.id, Serial: p.serial, Fingerprint: p.fingerprint,
		Client: p.client, TLSVersion: p.tlsVersion, Resumed: p.resumed, Decision: "deny",
		Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), RequestID: g.reqIDs.next(),
	}
	finish := func(route string) {
		e.Duration = time.Since(start)
		g.metrics.Request(route, e.Status, e.Decision, e.Duration, e.Upstream)
		g.logAccess(e)
	}
	// r.RequestURI is :path as the client sent it.
	cr, he := rt.cfg.canonicalize(r.Method, r.Host, r.RequestURI)
	if he != nil {
		e.Status, e.Reason, e.Error = he.Status, he.Reason, he.Msg
		writeJSONResponse(w, he.Status, errorJSON(codeFor(he.Status), he.Msg))
		finish("")
		return
	}
	e.Method, e.Host, e.Path = cr.method, cr.host, cr.path
	if rt.cfg.logQuery {
		e.Path = cr.target()
	}
	now := g.clock.Now()
	if why := g.checkLive(p, now); why != "" {
		e.Reason = why
		finish("")
		t.close()
		return
	}
	if g.checkStale(now) {
		e.Status, e.Reason = 503, reasonStale
		writeJSONResponse(w, 503, g.staleJSON(now))
		finish("")
		return
	}
	dec := rt.cfg.policy.Authorize(cr.host, cr.method, cr.match, p.id)
	if !dec.Allowed {
		route := ""
		if dec.Route != nil {
			route = dec.Route.Name
		}
		e.Route, e.Reason, e.Status = route, string(dec.Reason), 403
		writeJSONResponse(w, 403, forbiddenJSON(p.id, cr.method, cr.host, cr.path))
		finish(route)
		return
	}
	route := rt.routes[dec.Route.Index]
	up := route.up
	e.Route, e.Decision, e.Reason = route.name, "allow", string(dec.Reason)
	if route.limiter != nil {
		if d := route.limiter.Allow(p.id, g.clock.Now()); !d.Allowed {
			e.Decision, e.Reason, e.Status = "deny", reasonRateLimited, http.StatusTooManyRequests
			h := w.Header()
			h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
			h.Set("RateLimit-Limit", strconv.Itoa(d.Limit.Burst))
			h.Set("RateLimit-Remaining", "0")
			writeJSONResponse(w, http.StatusTooManyRequests, rateLimitedJSON(d))
			g.metrics.RateLimited(route.name)
			finish(route.name)
			return
		}
	}

	out := upstreamRequest(r, up, &cr)
	if route.legacy != nil {
		stripLegacyHeader(out.Header, route.legacy)
	}
	setIdentityHeaders(out.Header, p, route.hdr, rt.selfID)
	setForwarding(out.Header, p, cr.host)
	out.Header[HeaderRequestID] = []string{string(e.RequestID.AppendHex(nil))}
	g.relay(w, r, out, up, route.name, nil, e)
	finish(route.name)
}

// ownAnswerHeaders are the header lines of every answer the gateway
// makes itself (refusals, errors, rate limits), as opposed to an
// upstream's: JSON, never sniffed as something else by a browser
// (nosniff), and never stored by a cache between client and gateway
// (no-store: a refusal is about one connection's certificate, and a
// cached 403 or 503 would outlive the reason for it).
const ownAnswerHeaders = "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"

func writeJSONResponse(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

package gateway

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/legacykey"
	"github.com/certgate/certgate/internal/wire"
)

// Legacy static API keys (docs/migrating-off-api-keys.md).
//
// How a key-only client gets in without weakening any other route: the
// HTTP listener already completes the handshake of a client without a
// certificate (RequestClientCert; refusal.go) and answers its requests
// 401 no_certificate. Only when the running config has a route with
// legacy_keys does such a connection go to serveLegacy instead of
// answerRefusal; there every request is matched to its route first, and
// a request for a route that does not opt in, or that carries no key in
// the route's header, gets exactly the answer answerRefusal gives (401
// no_certificate, the same JSON, the HTTP/1.1 connection closed). A
// client that sends a certificate never reaches this file: its
// connection is served by h1proxy.go or h2.go as before, whatever headers
// it sends, so it is never asked for a key, and certificate clients pay
// nothing for the feature (the one test is on the refusal path).

// HeaderClientAuth tells the upstream how a request was authenticated;
// the gateway sets it to "legacy-key" on key-authenticated requests and
// always removes a client's copy.
const HeaderClientAuth = "X-Client-Auth"

// legacyRoute is a route's legacy_keys, compiled.
type legacyRoute struct {
	header string // canonical: Authorization or X-API-Key
	norm   string // lower case, for the strip by normalized name
	until  time.Time
	link   string
}

// SetLegacyKeys replaces the keys the gateway accepts (the change feed
// calls it with every change). A set that does not decode is refused and
// the keys known are kept.
func (g *Gateway) SetLegacyKeys(st wire.LegacyKeySet) error {
	keys := make([]legacykey.Key, 0, len(st.Keys))
	for _, k := range st.Keys {
		h, err := hex.DecodeString(k.Hash)
		if err != nil || len(h) != 32 {
			return errors.New("gateway: legacy keys: a hash is not 64 hex digits; keeping the keys known")
		}
		var hh [32]byte
		copy(hh[:], h)
		keys = append(keys, legacykey.Key{Hash: hh, Name: k.Name, Identity: k.Identity, Sunset: k.Sunset, Since: k.Since})
	}
	g.legacyKeys.Store(legacykey.NewSet(st.Salt, keys))
	g.log.Info("legacy keys updated", "keys", len(keys))
	return nil
}

// oneConnListener hands net/http one connection, then waits until it is
// closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// serveLegacy serves a connection without a certificate while a route
// takes legacy keys.
func (g *Gateway) serveLegacy(rt *runtime, tc *tls.Conn, raw net.Conn, ve *VerifyError) {
	g.refusedConns.Store(raw, struct{}{})
	defer g.refusedConns.Delete(raw)
	defer raw.Close()
	raw.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	ls := &legacySession{g: g, tc: tc, raw: raw, ve: ve, client: raw.RemoteAddr().String(), tlsVersion: tlsVersionName(cs.Version), h2: cs.NegotiatedProtocol == "h2"}
	if ls.h2 {
		srv := &http2.Server{IdleTimeout: rt.cfg.timeouts.idle, MaxConcurrentStreams: 250}
		ctx, cancel := context.WithCancel(g.ctx)
		defer cancel()
		srv.ServeConn(tc, &http2.ServeConnOpts{Context: ctx, BaseConfig: &http.Server{MaxHeaderBytes: rt.cfg.maxHeader}, Handler: ls})
		return
	}
	l := &oneConnListener{c: tc, done: make(chan struct{})}
	hs := &http.Server{
		Handler: ls, ReadHeaderTimeout: rt.cfg.timeouts.readHeader, IdleTimeout: rt.cfg.timeouts.idle, MaxHeaderBytes: rt.cfg.maxHeader,
		ErrorLog: nil,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				close(l.done)
			}
		},
		BaseContext: func(net.Listener) context.Context { return g.ctx },
	}
	stop := context.AfterFunc(g.ctx, func() { tc.Close() })
	defer stop()
	hs.Serve(l)
}

// legacySession is one certificate-less connection.
type legacySession struct {
	g          *Gateway
	tc         *tls.Conn
	raw        net.Conn
	ve         *VerifyError
	client     string
	tlsVersion string
	h2         bool
}

// legacyJSON is the body of a refused key: the code, what to do, and
// where the instructions are.
func legacyJSON(code, msg, link string) []byte {
	b, _ := json.Marshal(struct {
		Error        apiError `json:"error"`
		Instructions string   `json:"instructions,omitempty"`
	}{apiError{code, msg}, link})
	return b
}

func (ls *legacySession) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := ls.g
	defer g.recoverHTTP2(r.RequestURI)
	rt := g.rt.Load()
	start := time.Now()
	e := &accesslog.Entry{
		Time: start, Kind: accesslog.KindHTTP, Client: ls.client, TLSVersion: ls.tlsVersion, Decision: "deny",
		Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), RequestID: g.reqIDs.next(),
	}
	route, kind := "", AuthNone
	finish := func() {
		e.Duration = time.Since(start)
		// Counted after the request, so the certificate count derived
		// from both never dips (internal/metrics auth.go).
		g.metrics.Request(route, e.Status, e.Decision, e.Duration, e.Upstream)
		g.metrics.AuthRequest(kind)
		g.logAccess(e)
	}
	answer := func(status int, body []byte, extra http.Header) {
		for k, v := range extra {
			w.Header()[k] = v
		}
		e.Status = status
		if !ls.h2 && r.ContentLength != 0 {
			// A request body is not drained: the connection closes instead.
			w.Header().Set("Connection", "close")
		}
		writeJSONResponse(w, status, body)
	}
	// noCertificate is answerRefusal's answer, to the byte.
	noCertificate := func() {
		e.Reason = ls.ve.Reason.String()
		if !ls.h2 {
			w.Header().Set("Connection", "close")
		}
		answer(refusalStatus(ls.ve.Reason), refusalJSON(ls.ve, nil), nil)
		finish()
	}
	cr, he := rt.cfg.canonicalize(r.Method, r.Host, r.RequestURI)
	if he != nil {
		noCertificate()
		return
	}
	e.Method, e.Host, e.Path = cr.method, cr.host, cr.path
	if rt.cfg.logQuery {
		e.Path = cr.target()
	}
	m := rt.cfg.policy.Match(cr.host, cr.method, cr.match)
	if m == nil || rt.routes[m.Index].legacy == nil {
		noCertificate()
		return
	}
	hr := rt.routes[m.Index]
	lr := hr.legacy
	route, e.Route = hr.name, hr.name
	raw := r.Header.Get(lr.header)
	if raw == "" {
		noCertificate()
		return
	}
	e.Auth, kind = legacykey.AuthLegacyKey, legacykey.AuthLegacyKey
	key := raw
	if lr.header == "Authorization" {
		key = legacykey.FromAuthorization(raw)
	}
	now := g.clock.Now()
	k, ok := g.legacyKeys.Load().Lookup(key)
	if !ok {
		e.Reason = "unknown_key"
		answer(http.StatusUnauthorized, legacyJSON("unknown_key", "this API key is not accepted (unknown, revoked or mistyped); clients move to certificates: ask your operator for an enrollment token (certgate legacy-key migrate) and call with the certificate", lr.link), nil)
		finish()
		return
	}
	e.Identity = k.Identity
	e.Serial = legacykey.UsageSerialPrefix + k.Name
	sunset := k.Sunset
	if lr.until.Before(sunset) {
		sunset = lr.until
	}
	if !now.Before(sunset) {
		e.Reason = "key_sunset"
		msg := "static API keys stopped working here at " + sunset.UTC().Format(time.RFC3339) + ": ask your operator for an enrollment token (certgate legacy-key migrate --name " + k.Name +
			"), enroll (certgate enroll --token TOKEN --out DIR), run the agent, and call with the certificate"
		if lr.link != "" {
			msg += "; instructions: " + lr.link
		}
		answer(http.StatusUnauthorized, legacyJSON("key_sunset", msg, lr.link), nil)
		finish()
		return
	}
	if g.checkStale(now) {
		e.Reason = reasonStale
		answer(503, g.staleJSON(now), nil)
		finish()
		return
	}
	dec := rt.cfg.policy.Authorize(cr.host, cr.method, cr.match, k.Identity)
	if !dec.Allowed {
		e.Reason = string(dec.Reason)
		answer(403, forbiddenJSON(k.Identity, cr.method, cr.host, cr.path), nil)
		finish()
		return
	}
	e.Decision, e.Reason = "allow", string(dec.Reason)
	if hr.limiter != nil {
		if d := hr.limiter.Allow(k.Identity, g.clock.Now()); !d.Allowed {
			e.Decision, e.Reason = "deny", reasonRateLimited
			h := http.Header{}
			h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
			h.Set("RateLimit-Limit", strconv.Itoa(d.Limit.Burst))
			h.Set("RateLimit-Remaining", "0")
			answer(http.StatusTooManyRequests, rateLimitedJSON(d), h)
			g.metrics.RateLimited(hr.name)
			finish()
			return
		}
	}
	deprecation := legacyHeaders(k, sunset, lr.link)
	ls.forward(w, r, rt, hr, &cr, k, e, deprecation)
	finish()
}

// legacyHeaders are the response headers of a key-authenticated request:
// Deprecation (RFC 9745: since the key was imported), Sunset (RFC 8594:
// the earlier of the key's and the route's), and Link to the enrollment
// instructions.
func legacyHeaders(k legacykey.Key, sunset time.Time, link string) http.Header {
	h := http.Header{}
	since := k.Since
	if since.IsZero() {
		since = sunset
	}
	h.Set("Deprecation", "@"+strconv.FormatInt(since.Unix(), 10))
	h.Set("Sunset", sunset.UTC().Format(http.TimeFormat))
	if link != "" {
		h.Set("Link", "<"+link+`>; rel="deprecation"; type="text/html", <`+link+`>; rel="sunset"; type="text/html"`)
	}
	return h
}

// forward sends a key-authenticated request upstream: the client's
// identity and forwarding headers removed (as for any request), the key's
// header removed by its normalized name, the key's identity and
// X-Client-Auth added.
func (ls *legacySession) forward(w http.ResponseWriter, r *http.Request, rt *runtime, hr *httpRoute, cr *canonicalRequest, k legacykey.Key, e *accesslog.Entry, extra http.Header) {
	g := ls.g
	up := hr.up
	out := upstreamRequest(r, up, cr)
	stripLegacyHeader(out.Header, hr.legacy)
	if hr.hdr.identity {
		out.Header[HeaderIdentity] = []string{k.Identity}
	}
	out.Header[HeaderClientAuth] = []string{legacykey.AuthLegacyKey}
	p := &peer{client: ls.client}
	setForwarding(out.Header, p, cr.host)
	out.Header[HeaderRequestID] = []string{string(e.RequestID.AppendHex(nil))}
	g.relay(w, r, out, up, hr.name, extra, e)
}

// stripLegacyHeader removes the route's key header, by its normalized
// name (X_API_Key too), so no key reaches the upstream.
func stripLegacyHeader(h http.Header, lr *legacyRoute) {
	for name := range h {
		if normalizedEqual([]byte(name), lr.norm) {
			delete(h, name)
		}
	}
}

// compileLegacy turns a route's legacy_keys into its runtime form; nil
// when the route does not opt in.
func compileLegacy(header, until, link string) (*legacyRoute, error) {
	if header == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, until)
	if err != nil {
		return nil, err
	}
	return &legacyRoute{header: http.CanonicalHeaderKey(header), norm: strings.ToLower(header), until: t, link: link}, nil
}

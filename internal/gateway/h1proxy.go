package gateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/gateway/h1"
	"github.com/certgate/certgate/internal/ratelimit"
)

// clientBufferSize is the read and write buffer of a client connection.
const clientBufferSize = 8 << 10

// h1session serves one HTTP/1.x client connection: requests are read,
// checked and forwarded one after another by this one goroutine, with no
// per-request goroutine or channel (the reason this engine exists; see
// docs/benchmarks.md).
type h1session struct {
	g     *Gateway
	t     *tracked
	tc    *tls.Conn
	in    firstByte // what br reads
	br    *bufio.Reader
	bw    *bufio.Writer
	head  []byte
	out   []byte
	req   h1.Request
	cr    canonicalRequest // req in canonical form, once it passed
	entry accesslog.Entry
}

// h1Pool holds the sessions not serving a request, with their buffers
// (about 20 KiB), so that serving allocates none of them, as net/http
// pools its bufio readers and writers. A connection takes one only when
// the first byte of a request has arrived and gives it back when the
// request is done: a connection waiting for its next request holds no
// buffer of its own (docs/benchmarks.md, idle connections).
var h1Pool = sync.Pool{New: func() any {
	s := &h1session{
		bw:   bufio.NewWriterSize(nil, clientBufferSize),
		head: make([]byte, 0, 1024),
		out:  make([]byte, 0, 2048),
	}
	s.br = bufio.NewReaderSize(&s.in, clientBufferSize)
	return s
}}

// maxPooledScratch bounds the head and out buffers a session keeps in the
// pool; one that grew past it (a very large head) is dropped.
const maxPooledScratch = 16 << 10

// firstByte is what a session's reader reads: the byte that woke the
// connection up, then the connection.
type firstByte struct {
	tc   *tls.Conn
	b    byte
	have bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.have && len(p) > 0 {
		p[0], f.have = f.b, false
		return 1, nil
	}
	return f.tc.Read(p)
}

// parkAfter is how long a connection waits for its next request on the
// goroutine that served the last one. After that it is parked (park.go):
// its goroutine ends and the poller watches its socket, a few dozen bytes
// instead of a stack of 4 KiB and more that the heap goal counts again.
// Without a poller (not Linux) its wait moves to a new goroutine
// (goServe), which starts with the runtime's average stack: serving a
// request grows a goroutine's stack to 8 KiB and more, which it keeps
// until a garbage collection. Under load requests come sooner, so a busy
// connection is never parked.
//
// Except when many connections wait at once: past parkPressure of them
// waiting on goroutines, a connection that starts its wait waits only
// parkAfterBusy. Connections opened faster than parkAfter drains them
// (thousands a second, each answered a first request and then silent)
// would otherwise keep a second's worth of goroutines waiting, 8 KiB of
// stack each: ~11 MiB at the peak of 5,000 connections opened at ~1,300
// a second, which the heap keeps after the stacks are freed and which
// raises the garbage collector's goal as much again (docs/benchmarks.md,
// idle connections). parkPressure goroutines wait the whole parkAfter
// still (the first to come, and those coming as they leave), so a
// keep-alive load with fewer connections in flight (the benchmarks': 32)
// never parks a busy connection; a connection parked too early is woken
// by its next request's bytes like any other (level-triggered: bytes
// that came before the park wake it at once).
const parkAfter = time.Second

const (
	parkPressure  = 128
	parkAfterBusy = 20 * time.Millisecond
)

func (g *Gateway) serveH1(t *tracked) {
	tc := t.conn.(*tls.Conn)
	var first [1]byte
	for {
		// Wait for the next request with one byte of buffer: what
		// crypto/tls holds is all the connection holds while it waits.
		idleEnd := t.parkedUntil
		deadline := idleEnd
		if idleEnd.IsZero() || canPark {
			now := time.Now()
			if idleEnd.IsZero() {
				idleEnd = now.Add(g.rt.Load().cfg.timeouts.idle)
			}
			// Woken by the poller with nothing to read (a record's
			// beginning, a record without data), it parks again.
			wait := parkAfter
			if canPark && g.waiting.Load() >= g.parkPressure.Load() {
				wait = parkAfterBusy
			}
			if t.onHandshaker {
				wait = min(wait, handshakerWait)
			}
			deadline = now.Add(wait)
			if idleEnd.Before(deadline) {
				deadline = idleEnd
			}
		}
		t.parkedUntil = time.Time{}
		tc.SetReadDeadline(deadline)
		g.waiting.Add(1)
		n, err := tc.Read(first[:])
		g.waiting.Add(-1)
		if n == 0 {
			if deadline.Before(idleEnd) && isTimeout(err) && g.ctx.Err() == nil {
				t.parkedUntil = idleEnd
			}
			// Closed, idle timeout or a TLS error: nothing to answer.
			return
		}
		s := h1Pool.Get().(*h1session)
		s.g, s.t, s.tc = g, t, tc
		s.in = firstByte{tc: tc, b: first[0], have: true}
		s.br.Reset(&s.in)
		s.bw.Reset(tc)
		more := s.serveOne()
		// Pipelined requests already read stay with this session.
		for more && s.br.Buffered() > 0 {
			more = s.serveOne()
		}
		s.release()
		if !more {
			return
		}
	}
}

// release returns the session to the pool. Nothing uses it any more: every
// request, and a tunnel's copies both ways, finished before serveOne
// returned, and nothing is left in its reader.
func (s *h1session) release() {
	s.br.Reset(nil)
	s.bw.Reset(nil)
	s.g, s.t, s.tc = nil, nil, nil
	s.in = firstByte{}
	s.req.Reset()
	s.cr = canonicalRequest{}
	s.entry = accesslog.Entry{}
	if cap(s.head) > maxPooledScratch || cap(s.out) > maxPooledScratch {
		return
	}
	h1Pool.Put(s)
}

// serveOne serves one request and reports whether the connection may
// carry another.
func (s *h1session) serveOne() bool {
	rt := s.g.rt.Load()
	p := s.t.peer
	// The request's first byte is here (serveH1): the header timeout runs
	// from now.
	start := time.Now()
	s.tc.SetReadDeadline(start.Add(rt.cfg.timeouts.readHeader))
	head, err := h1.ReadHead(s.br, s.head, rt.cfg.maxHeader)
	s.head = head
	e := &s.entry
	*e = accesslog.Entry{
		Time: start, Kind: accesslog.KindHTTP, Identity: p.id, Serial: p.serial, Fingerprint: p.fingerprint,
		Client: p.client, TLSVersion: p.tlsVersion, Resumed: p.resumed, Decision: "deny",
		RequestID: s.g.reqIDs.next(),
	}
	if err != nil {
		var he *h1.Error
		switch {
		case errors.As(err, &he):
			s.refuse(e, he)
		case isTimeout(err):
			s.refuse(e, &h1.Error{Status: 408, Reason: "read_header_timeout", Msg: "timed out reading the request header"})
		}
		return false
	}
	req := &s.req
	if he := h1.ParseRequest(head, req); he != nil {
		s.refuse(e, he)
		return false
	}
	// The header timeout does not bound a body or a tunnel. A request
	// without either reads nothing more from the client before the next
	// head, whose wait sets its own deadline: the clear is not needed.
	if req.HasBody() || req.Upgrade {
		s.tc.SetReadDeadline(time.Time{})
	}
	host := req.Host
	if req.Authority != nil {
		if req.Host != nil && !h1.EqualFold(req.Host, string(req.Authority)) {
			e.Method, e.Host, e.Path = req.Method, string(req.Host), string(req.Path)
			s.refuse(e, h1.BadRequest("host_mismatch", "the Host header does not match the authority of the request target"))
			return false
		}
		host = req.Authority
	}
	cr, he := rt.cfg.canonicalize(req.Method, string(host), string(req.Target))
	if he != nil {
		e.Method, e.Host, e.Path = req.Method, string(host), string(req.Path)
		s.refuse(e, he)
		return false
	}
	s.cr = cr
	e.Method, e.Host, e.Path = cr.method, cr.host, cr.path
	if rt.cfg.logQuery {
		e.Path = cr.target()
	}
	now := s.g.clock.Now()
	if why := s.g.checkLive(p, now); why != "" {
		e.Reason = why
		s.finish(e, "")
		return false
	}
	if s.g.checkStale(now) {
		e.Reason, e.Status = reasonStale, 503
		// A request body is not drained: the connection closes instead.
		closeAfter := req.Close || req.HasBody()
		s.writeJSON(503, s.g.staleJSON(now), closeAfter)
		s.finish(e, "")
		return !closeAfter
	}
	dec := rt.cfg.policy.Authorize(cr.host, cr.method, cr.match, p.id)
	if !dec.Allowed {
		return s.forbid(e, dec)
	}
	route := rt.routes[dec.Route.Index]
	e.Route, e.Decision, e.Reason = route.name, "allow", string(dec.Reason)
	if route.limiter != nil {
		if d := route.limiter.Allow(p.id, s.g.clock.Now()); !d.Allowed {
			return s.rateLimited(e, route.name, d)
		}
	}
	if req.Expect100 {
		s.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if s.bw.Flush() != nil {
			return false
		}
	}
	return s.proxy(rt, route, e)
}

func (s *h1session) forbid(e *accesslog.Entry, dec authz.Decision) bool {
	if dec.Route != nil {
		e.Route = dec.Route.Name
	}
	e.Reason = string(dec.Reason)
	e.Status = 403
	// A request body is not drained: the connection closes instead.
	closeAfter := s.req.Close || s.req.HasBody()
	var buf [512]byte
	s.writeJSON(403, appendForbiddenJSON(buf[:0], s.t.peer.id, s.cr.method, s.cr.host, s.cr.path), closeAfter)
	s.finish(e, e.Route)
	return !closeAfter
}

// rateLimited answers 429 to a request over its identity's limit on the
// route. A request body is not drained: the connection closes instead.
func (s *h1session) rateLimited(e *accesslog.Entry, route string, d ratelimit.Decision) bool {
	e.Decision, e.Reason, e.Status = "deny", reasonRateLimited, http.StatusTooManyRequests
	closeAfter := s.req.Close || s.req.HasBody()
	var buf [128]byte
	hdr := appendRateLimitHeaders(buf[:0], d)
	s.writeJSONHeaders(http.StatusTooManyRequests, hdr, rateLimitedJSON(d), closeAfter)
	s.g.metrics.RateLimited(route)
	s.finish(e, route)
	return !closeAfter
}

// refuse answers a request that could not be parsed and closes.
func (s *h1session) refuse(e *accesslog.Entry, he *h1.Error) {
	e.Decision, e.Reason, e.Status, e.Error = "deny", he.Reason, he.Status, he.Msg
	s.writeJSON(he.Status, errorJSON(codeFor(he.Status), he.Msg), true)
	s.finish(e, "")
}

func (s *h1session) finish(e *accesslog.Entry, route string) {
	s.finishAt(e, route, time.Now())
}

// finishAt is finish for a request that ended at end (a clock read the
// caller made anyway).
func (s *h1session) finishAt(e *accesslog.Entry, route string, end time.Time) {
	e.Duration = end.Sub(e.Time)
	s.g.metrics.Request(route, e.Status, e.Decision, e.Duration, e.Upstream)
	s.g.logAccess(e)
}

func (s *h1session) writeJSON(status int, body []byte, closeAfter bool) {
	s.writeJSONHeaders(status, nil, body, closeAfter)
}

// writeJSONHeaders is writeJSON with extra header lines (each ending in
// CRLF).
func (s *h1session) writeJSONHeaders(status int, extra, body []byte, closeAfter bool) {
	b := s.out[:0]
	b = h1.AppendStatusLine(b, status, nil)
	b = append(b, extra...)
	b = append(b, ownAnswerHeaders...)
	b = h1.AppendContentLength(b, int64(len(body)))
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	s.out = b
	s.bw.Write(b)
	s.bw.Flush()
}

// proxy forwards the parsed request to the route's upstream and relays the
// response. It reports whether the client connection may be reused.
func (s *h1session) proxy(rt *runtime, route *httpRoute, e *accesslog.Entry) bool {
	req := &s.req
	up := route.up
	e.UpstreamURL = up.key
	hasBody := req.HasBody()
	var uc *upConn
	for {
		var reused bool
		var err error
		upStart := time.Now()
		uc, reused, err = up.get(s.g.ctx, upStart)
		if err != nil {
			return s.upstreamFailed(e, route, 502, "upstream_unavailable", err, hasBody)
		}
		if !reused {
			upStart = time.Now() // the upstream time does not count the dial
		}
		s.out = s.appendUpstreamHead(s.out[:0], rt, route)
		if !hasBody {
			// The head alone: one write straight from s.out, not copied
			// through uc.bw (with identity headers it is a few KiB), then
			// the wait for the answer without a read that would fail
			// (writeAwait), so the header timeout is set first.
			uc.c.SetReadDeadline(upStart.Add(up.headerTimeout))
			if err := uc.writeAwait(s.out, reused, upStart); err != nil {
				uc.c.Close()
				if reused {
					continue // a stale pooled connection: try the next one
				}
				return s.upstreamFailed(e, route, 502, "upstream_write_failed", err, false)
			}
		} else {
			uc.bw.Write(s.out)
			n, err := s.copyRequestBody(uc)
			e.BytesIn = n
			if err != nil {
				uc.c.Close()
				if errors.Is(err, h1.ErrChunked) {
					s.refuse(e, h1.BadRequest("bad_chunked_body", "%v", err))
					return false
				}
				if uc.bw.Flush() != nil {
					return s.upstreamFailed(e, route, 502, "upstream_write_failed", err, true)
				}
				e.Reason, e.Error = "client_body_error", err.Error()
				s.finish(e, route.name)
				return false
			}
			if err := uc.bw.Flush(); err != nil {
				uc.c.Close()
				return s.upstreamFailed(e, route, 502, "upstream_write_failed", err, true)
			}
			uc.c.SetReadDeadline(time.Now().Add(up.headerTimeout))
		}
		var head []byte
		for {
			head, err = h1.ReadHead(uc.br, uc.head, maxResponseHead)
			uc.head = head
			if err == nil {
				err = h1.ParseResponse(head, &uc.resp)
			}
			// 1xx responses other than 101 are informational: skip them.
			if err != nil || uc.resp.Status/100 != 1 || uc.resp.Status == 101 {
				break
			}
		}
		if err != nil {
			uc.c.Close()
			// The upstream closed a pooled connection before answering:
			// retry on the next pooled connection, or a fresh one. Every
			// stale connection is used up once, and a fresh dial is not
			// retried, so the loop ends.
			if reused && !hasBody && len(head) == 0 && !isTimeout(err) {
				continue
			}
			if isTimeout(err) {
				return s.upstreamFailed(e, route, 504, "upstream_timeout", err, true)
			}
			return s.upstreamFailed(e, route, 502, "upstream_bad_response", err, true)
		}
		// The header timeout does not bound the body or a tunnel; where
		// the whole answer is already buffered nothing more is read, and
		// the connection's next request sets its own deadline before
		// reading: the clear is not needed.
		if !answerBuffered(uc, s.cr.method) {
			uc.c.SetReadDeadline(time.Time{})
		}
		e.Upstream = time.Since(upStart)
		break
	}
	return s.relayResponse(route, uc, e)
}

// answerBuffered reports whether the whole of uc's answer (head parsed)
// to method is in its reader.
func answerBuffered(uc *upConn, method string) bool {
	if uc.resp.Status == 101 {
		return false
	}
	switch uc.resp.Framing(method) {
	case h1.FramingNone:
		return true
	case h1.FramingLength:
		return int64(uc.br.Buffered()) >= uc.resp.ContentLength
	}
	return false
}

func (s *h1session) upstreamFailed(e *accesslog.Entry, route *httpRoute, status int, reason string, err error, closeAfter bool) bool {
	closeAfter = closeAfter || s.req.Close
	e.Status, e.Reason, e.Error = status, reason, err.Error()
	msg := "upstream unavailable"
	if status == 504 {
		msg = "upstream timed out"
	}
	s.writeJSON(status, errorJSON(codeFor(status), msg), closeAfter)
	s.g.log.Warn("upstream request failed", "route", route.name, "upstream", route.up.addr, "status", status, "reason", reason, "error", err)
	s.finish(e, route.name)
	return !closeAfter
}

func (s *h1session) copyRequestBody(uc *upConn) (int64, error) {
	if s.req.Chunked {
		return h1.CopyChunked(uc.bw, s.br, uc.bw.Flush, true)
	}
	n, err := io.CopyN(uc.bw, s.br, s.req.ContentLength)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *h1session) relayResponse(route *httpRoute, uc *upConn, e *accesslog.Entry) bool {
	req, resp := &s.req, &uc.resp
	e.Status = resp.Status
	if resp.Status == 101 {
		return s.upgrade(route, uc, e)
	}
	mode := resp.Framing(s.cr.method)
	closeAfter := req.Close || s.g.ctx.Err() != nil
	clientChunked := false
	if mode == h1.FramingChunked || mode == h1.FramingEOF {
		if req.Minor == 1 {
			clientChunked = true
		} else {
			closeAfter = true
		}
	}
	b := h1.AppendStatusLine(s.out[:0], resp.Status, resp.Reason)
	for _, h := range resp.Headers {
		if skipResponseHeader(h.Name) {
			continue
		}
		b = h1.AppendHeader(b, h.Name, h.Value)
	}
	switch {
	case mode == h1.FramingLength || (mode == h1.FramingNone && s.cr.method == "HEAD" && resp.ContentLength >= 0):
		b = h1.AppendContentLength(b, resp.ContentLength)
	case clientChunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	s.out = b
	s.bw.Write(b)

	var n int64
	var err error
	switch mode {
	case h1.FramingLength:
		n, err = h1.CopyStream(s.bw, uc.br, resp.ContentLength, false)
	case h1.FramingChunked:
		n, err = h1.CopyChunked(s.bw, uc.br, s.bw.Flush, clientChunked)
	case h1.FramingEOF:
		n, err = h1.CopyStream(s.bw, uc.br, -1, clientChunked)
	}
	e.BytesOut = n
	if err == nil {
		err = s.bw.Flush()
	}
	end := time.Now()
	if err != nil || mode == h1.FramingEOF || resp.Close {
		uc.c.Close()
	} else {
		route.up.put(uc, end)
	}
	if err != nil {
		e.Error = err.Error()
		closeAfter = true
	}
	s.finishAt(e, route.name, end)
	return !closeAfter
}

// upgrade completes a WebSocket handshake and pipes bytes both ways until
// either side closes.
func (s *h1session) upgrade(route *httpRoute, uc *upConn, e *accesslog.Entry) bool {
	if !s.req.Upgrade {
		uc.c.Close()
		return s.upstreamFailed(e, route, 502, "upstream_unexpected_upgrade", errors.New("upstream switched protocols for a request that did not ask"), true)
	}
	b := h1.AppendStatusLine(s.out[:0], 101, uc.resp.Reason)
	for _, h := range uc.resp.Headers {
		if skipResponseHeader(h.Name) {
			continue
		}
		b = h1.AppendHeader(b, h.Name, h.Value)
	}
	b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"...)
	s.out = b
	s.bw.Write(b)
	if err := s.bw.Flush(); err != nil {
		uc.c.Close()
		return false
	}
	if !s.g.startTunnel(s.t, route.name) {
		uc.c.Close()
		e.Reason = CutStale
		s.finish(e, route.name)
		return false
	}
	in, out := s.g.pipe(s.tc, s.br, uc.c, uc.br)
	e.BytesIn, e.BytesOut = in, out
	s.finish(e, route.name)
	return false
}

// pipe copies a->b and b->a (each with what its reader already buffered)
// until one side ends, then closes both.
func (g *Gateway) pipe(a net.Conn, ar io.Reader, b net.Conn, br io.Reader) (aToB, bToA int64) {
	done := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { done <- n }()
		defer a.Close()
		defer b.Close()
		defer g.recovered(panicTunnel)
		n, _ = io.Copy(b, ar)
	}()
	bToA, _ = io.Copy(a, br)
	a.Close()
	b.Close()
	aToB = <-done
	return aToB, bToA
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

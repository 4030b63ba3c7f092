package gateway

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/revocation"
)

// acceptLoop accepts connections until ln is closed and hands each one,
// after a successful handshake, to serve in its own goroutine.
// With answer, a refused client certificate completes the handshake and is
// answered over HTTP (refusal.go); without, it is a TLS alert.
func (g *Gateway) acceptLoop(ln net.Listener, answer bool, serve func(*tracked)) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.log.Error("accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		j := hsJob{c: c, answer: answer, serve: serve}
		select {
		case g.hsJobs <- j: // a handshaker was waiting
		default:
			g.wg.Add(1)
			go g.handshaker(j)
		}
	}
}

// Handshakes run on handshakers: goroutines that, after a handshake, wait
// a while for the next connection instead of ending. A full handshake
// needs a deep stack (x509, ECDSA, HKDF: 16-32 KiB), and a new goroutine
// starts with the runtime's average stack size, so before, every
// handshake grew its stack by copying it two or three times (runtime
// newstack/copystack, ~4% of the gateway's CPU under full handshakes). A
// handshaker keeps its grown stack for the next one. Their number is not
// bounded (a connection never waits for a handshaker: one is started when
// none is idle) but at most maxIdleHandshakers wait at once, and a
// handshaker waiting handshakerIdle ends: at most ~8 stacks of 32 KiB
// kept.
//
// An HTTP/1.1 connection is served on its handshaker for as long as its
// requests come within handshakerWait of the connection's start or of the
// last answer (serveFirst): a client that sends one request and closes
// (the resumed-handshake benchmark, most API clients) is served, answered
// and closed on one goroutine, as the bare Go server does, instead of
// starting a second goroutine whose small stack grew again for every
// connection (docs/benchmarks.md, resumed handshakes). When a wait passes
// handshakerWait, it goes on on a new goroutine with a small stack
// (goServe), parked after parkAfter as before; so a connection waiting
// for its next request never holds the handshaker's stack for more than
// handshakerWait. HTTP/2 and TCP route connections are served on a new
// goroutine at once.
const (
	maxIdleHandshakers = 8
	handshakerIdle     = 10 * time.Second
	handshakerWait     = 20 * time.Millisecond
)

// hsJob is an accepted connection waiting for its handshake.
type hsJob struct {
	c      net.Conn
	answer bool
	serve  func(*tracked)
}

// handshaker runs j's handshake, then the handshakes it is handed while
// it waits (see above).
func (g *Gateway) handshaker(j hsJob) {
	defer g.wg.Done()
	var idle *time.Timer
	for {
		g.handshakeAndServe(j)
		if g.hsIdle.Add(1) > maxIdleHandshakers {
			g.hsIdle.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(handshakerIdle)
		} else {
			idle.Reset(handshakerIdle)
		}
		select {
		case j = <-g.hsJobs:
			g.hsIdle.Add(-1)
		case <-idle.C:
			g.hsIdle.Add(-1)
			return
		case <-g.ctx.Done():
			g.hsIdle.Add(-1)
			idle.Stop()
			return
		}
	}
}

// handshakeAndServe runs the handshake of j and hands the connection to
// a new goroutine to be served. A panic is recovered here, so that the
// handshaker goes on.
func (g *Gateway) handshakeAndServe(j hsJob) {
	handedOff := false
	defer func() {
		if !handedOff {
			j.c.Close()
		}
	}()
	defer g.recoveredConn(j.c)
	t := g.handshake(j.c, j.answer)
	if t == nil {
		return
	}
	handedOff = true
	if !t.onHandshaker {
		g.goServe(j.c, t, j.serve, true)
		return
	}
	g.serveFirst(j.c, t, j.serve)
}

// serveFirst serves an HTTP/1.1 connection on its handshaker (see above)
// until a wait for its next request passes handshakerWait, then hands
// the connection and the rest of its wait to a new goroutine. A panic is
// recovered by the handshaker (handshakeAndServe).
func (g *Gateway) serveFirst(c net.Conn, t *tracked, serve func(*tracked)) {
	waiting := false
	defer func() {
		if !waiting {
			c.Close()
		}
	}()
	waiting = g.serveTracked(t, serve, true)
	t.onHandshaker = false
	if waiting {
		// t.parkedUntil holds the end of its idle timeout: the new
		// goroutine waits on until parkAfter, then parks it.
		g.goServe(c, t, serve, false)
	}
}

// recoveredConn is recovered for a connection, naming its client only
// when there was a panic (the address is not formatted for every
// connection).
func (g *Gateway) recoveredConn(c net.Conn) {
	v := recover()
	if v == nil {
		return
	}
	g.notePanic(panicConnection, v, "client", c.RemoteAddr().String())
}

// recoveredPeer is recovered for a tracked connection; the attributes of
// the panic's log line are made only when there was one (as arguments of
// recovered they were two allocations per connection).
func (g *Gateway) recoveredPeer(t *tracked) {
	v := recover()
	if v == nil {
		return
	}
	g.notePanic(panicConnection, v, "client", t.peer.client)
}

// goServe serves t on a new goroutine (tracking it first if first).
// When serve parks the connection (serveH1, after a while without a
// request), the poller watches it with no goroutine (park.go), and starts
// goServe again when the client sends something; without a poller its
// wait goes on in another new goroutine with a small stack. The
// connection is closed and forgotten only when serve returns without
// parking it (or the poller closes it at its idle timeout).
func (g *Gateway) goServe(c net.Conn, t *tracked, serve func(*tracked), first bool) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		parked := false
		defer func() {
			if !parked {
				c.Close()
			}
		}()
		defer g.recoveredPeer(t)
		if parked = g.serveTracked(t, serve, first); parked {
			// Its socket is watched without a goroutine until the client
			// sends something (park.go); where it cannot be, the wait
			// goes on in a new goroutine.
			if !g.poller.Load().park(t, serve, t.parkedUntil) {
				g.goServe(c, t, serve, false)
			}
		}
	}()
}

// handshake runs the TLS handshake with its timeout and logs a failure.
// It returns the connection to serve, or nil when it is done with it: the
// handshake failed, or a refused client certificate was answered.
func (g *Gateway) handshake(c net.Conn, answer bool) *tracked {
	start := time.Now()
	// No SetNoDelay: Go's TCP connections have Nagle off already.
	rt := g.rt.Load()
	var (
		tc      *tls.Conn
		cs      tls.ConnectionState
		refused *VerifyError
		err     error
	)
	c.SetDeadline(start.Add(rt.cfg.timeouts.handshake))
	if answer {
		tc = tls.Server(c, g.answerConfig)
		cs, refused, err = g.answeringHandshake(tc)
	} else {
		tc = tls.Server(c, g.tcpTLSConfig)
		if err = tc.Handshake(); err == nil {
			cs = tc.ConnectionState()
		}
	}
	if err != nil {
		g.handshakeFailed(tc, c.RemoteAddr(), err, start)
		lingerClose(c)
		return nil
	}
	if refused != nil {
		if refused.Reason == ReasonNoCertificate && rt.legacy {
			// A route takes legacy keys: each request is checked there,
			// and answered as below when it brings none (legacykey.go).
			g.serveLegacy(rt, tc, c, refused)
			return nil
		}
		g.handshakeFailed(tc, c.RemoteAddr(), refused, start)
		g.answerRefusal(rt, tc, c, refused)
		return nil
	}
	c.SetDeadline(time.Time{})
	li := leafInfoFor(rt, &cs)
	return &tracked{conn: tc, raw: c, peer: newPeer(&cs, c.RemoteAddr(), li), start: start,
		onHandshaker: answer && cs.NegotiatedProtocol != "h2"}
}

// serveTracked tracks the connection (from first on) while serve runs,
// and stops tracking it and closes it when serve returns, unless serve
// parked it: then it reports true and the connection stays as it is.
func (g *Gateway) serveTracked(t *tracked, serve func(*tracked), first bool) (parked bool) {
	if first {
		g.tracker.add(t)
		g.metrics.Handshake(reasonNames[ReasonOK])
		g.metrics.ActiveConnections(1)
		g.handshakes.Add(1)
	}
	defer func() {
		if !parked {
			g.untrack(t)
		}
	}()
	if g.ctx.Err() != nil {
		return false
	}
	// A revocation that landed between verifyConnection and add above
	// found nothing to close: the set is swapped before its hooks run, so
	// checking again after add leaves no gap.
	if first {
		if _, bad := issuerRevoked(g.revoked.Load(), t.peer.chain); g.revoked.Revoked(t.peer.serial) || bad {
			g.cut(t, CutRevoked)
			return false
		}
	}
	serve(t)
	parked = !t.parkedUntil.IsZero()
	return parked
}

// errNoClientCertificate is crypto/tls's error when a listener that
// requires a certificate (a TCP route's) gets none; it sends the alert
// (certificate_required in TLS 1.3) before VerifyConnection could run, and
// exports no sentinel, so the access log's reason is read from the text
// (TestTCPRefusalsAsClientsShowThem pins it).
const errNoClientCertificate = "tls: client didn't provide a certificate"

func (g *Gateway) handshakeFailed(tc *tls.Conn, remote net.Addr, err error, start time.Time) {
	reason := ReasonHandshakeError
	var ve *VerifyError
	if errors.As(err, &ve) {
		reason = ve.Reason
	} else if err.Error() == errNoClientCertificate {
		reason = ReasonNoCertificate
	}
	e := accesslog.Entry{
		Time: start, Kind: accesslog.KindHandshake, Client: remote.String(),
		Decision: "deny", Reason: reason.String(), Error: err.Error(), Duration: time.Since(start),
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		if id, err := identity.FromCertificate(certs[0]); err == nil {
			e.Identity = id.String()
		}
		e.Serial = revocation.SerialOf(certs[0])
	}
	g.metrics.Handshake(reason.String())
	if g.access != nil {
		g.access.Log(&e)
	}
	g.log.Debug("handshake refused", "client", e.Client, "reason", e.Reason, "error", err)
}

// Lingering after a refused handshake: how long, and how many of the
// client's bytes are read and dropped at most.
const (
	lingerTime  = time.Second
	lingerBytes = 64 << 10
)

// lingerClose closes a connection whose handshake the gateway refused
// without discarding the alert it sent. In TLS 1.3 the client's side of
// the handshake is done before the server has checked its certificate, so
// clients send data at once (openssl s_client its stdin, a TCP route's
// client its protocol); closing with that data unread makes the kernel
// send a reset, and a reset that overtakes the alert makes the client show
// "connection reset" instead of the reason (seen with openssl s_client:
// "write:errno=104", no "alert bad certificate"). So the write side is
// shut first (the alert and a FIN go out), then what the client sends is
// read and dropped until it closes, for at most lingerTime and
// lingerBytes, the way nginx's lingering_close does.
func lingerClose(c net.Conn) {
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c, lingerBytes)
}

// serveHTTP dispatches on the negotiated protocol.
func (g *Gateway) serveHTTP(t *tracked) {
	if t.conn.(*tls.Conn).ConnectionState().NegotiatedProtocol == "h2" {
		g.serveH2(t)
		return
	}
	g.serveH1(t)
}

// checkLive reports why a connection may no longer be used, or "" if it
// may: the certificate expired since the handshake, or was revoked.
func (g *Gateway) checkLive(p *peer, now time.Time) string {
	if now.After(p.notAfter) {
		return ReasonExpired.String()
	}
	if g.revoked.Revoked(p.serial) {
		return ReasonRevoked.String()
	}
	if _, bad := issuerRevoked(g.revoked.Load(), p.chain); bad {
		return ReasonRevoked.String()
	}
	return ""
}

func (g *Gateway) logAccess(e *accesslog.Entry) {
	if g.access != nil {
		g.access.Log(e)
	}
	// Counted from the same entry, so usage and the access log agree.
	if g.usage != nil {
		g.usage.Record(e)
	}
}

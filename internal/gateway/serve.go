package gateway

import (
	"crypto/tls"
	"errors"
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
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			defer g.recovered(panicConnection, "client", c.RemoteAddr().String())
			g.handshake(c, answer, serve)
		}()
	}
}

// handshake runs the TLS handshake with its timeout, logs a failure, and
// tracks the connection while serve runs.
func (g *Gateway) handshake(c net.Conn, answer bool, serve func(*tracked)) {
	start := time.Now()
	// No SetNoDelay: Go's TCP connections have Nagle off already.
	rt := g.rt.Load()
	cfg, refused := g.tcpTLSConfig, (*VerifyError)(nil)
	if answer {
		cfg = g.answeringConfig(&refused)
	}
	tc := tls.Server(c, cfg)
	c.SetDeadline(start.Add(rt.cfg.timeouts.handshake))
	if err := tc.Handshake(); err != nil {
		g.handshakeFailed(tc, c.RemoteAddr(), err, start)
		c.Close()
		return
	}
	if refused != nil {
		if refused.Reason == ReasonNoCertificate && rt.legacy {
			// A route takes legacy keys: each request is checked there,
			// and answered as below when it brings none (legacykey.go).
			g.serveLegacy(rt, tc, c, refused)
			return
		}
		g.handshakeFailed(tc, c.RemoteAddr(), refused, start)
		g.answerRefusal(rt, tc, c, refused)
		return
	}
	c.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	id, _ := identity.FromCertificate(cs.PeerCertificates[0])
	t := &tracked{conn: tc, raw: c, peer: newPeer(&cs, c.RemoteAddr(), id.String()), start: start}
	g.tracker.add(t)
	g.metrics.Handshake(ReasonOK.String())
	g.metrics.ActiveConnections(1)
	defer func() {
		g.tracker.remove(t)
		t.close()
		g.metrics.ActiveConnections(-1)
	}()
	if g.ctx.Err() != nil {
		return
	}
	// A revocation that landed between verifyConnection and add above
	// found nothing to close: the set is swapped before its hooks run, so
	// checking again after add leaves no gap.
	if _, bad := issuerRevoked(g.revoked.Load(), t.peer.chain); g.revoked.Revoked(t.peer.serial) || bad {
		g.cut(t, CutRevoked)
		return
	}
	serve(t)
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

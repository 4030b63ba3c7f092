package gateway

import (
	"net"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
)

// serveTCP checks the identity against a TCP route's rule and pipes raw
// bytes to its backend. A refused identity is disconnected before the
// backend is dialled.
func (g *Gateway) serveTCP(name string, t *tracked) {
	start := time.Now()
	p := t.peer
	e := &accesslog.Entry{
		Time: start, Kind: accesslog.KindTCP, Identity: p.id, Serial: p.serial, Fingerprint: p.fingerprint,
		Client: p.client, TLSVersion: p.tlsVersion, Resumed: p.resumed, Route: name, Decision: "deny",
		RequestID: g.reqIDs.next(),
	}
	defer func() {
		e.Duration = time.Since(start)
		g.metrics.TCPConnection(name, e.Decision, e.Duration)
		g.logAccess(e)
	}()
	rt := g.rt.Load()
	r, ok := rt.tcp[name]
	if !ok {
		e.Reason = "no_route"
		return
	}
	if _, ok := r.allow.Match(p.id); !ok {
		e.Reason = "identity_not_allowed"
		return
	}
	if g.checkStale(g.clock.Now()) {
		e.Reason = reasonStale
		return
	}
	d := net.Dialer{Timeout: rt.cfg.timeouts.upstreamDial}
	bc, err := d.DialContext(g.ctx, "tcp", r.backend)
	if err != nil {
		e.Reason, e.Error = "upstream_unavailable", err.Error()
		g.log.Warn("tcp backend unavailable", "route", name, "backend", r.backend, "error", err)
		return
	}
	if !g.startTunnel(t, name) {
		bc.Close()
		e.Reason = reasonStale
		return
	}
	e.Decision, e.Reason = "allow", "allowed"
	e.BytesIn, e.BytesOut = g.pipe(t.conn, t.conn, bc, bc)
}

package gateway

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/revocation"
)

// KindCut is the access log kind of a connection the gateway closed on its
// own: its certificate was revoked or expired, or the revocation data went
// stale while it tunnelled bytes.
const KindCut = "cut"

// Reasons a live connection is cut, in the access log and the metrics.
const (
	CutRevoked = "revoked"
	CutExpired = "expired"
	CutStale   = "revocation_stale"
)

// reasonStale is the access log reason of a request or TCP connection
// refused because the revocation data is older than max_staleness.
const reasonStale = "revocation_stale"

// freshness states.
const (
	freshUnknown int32 = iota // not yet checked
	freshOK
	freshStale
)

// freshness tracks whether the revocation data is current enough to serve.
type freshness struct {
	max   time.Duration // 0: never stale
	state atomic.Int32
	mu    sync.Mutex // serialises state changes and their log lines
}

// cut closes a live connection on the gateway's own initiative and records
// why. It closes the TCP connection under the TLS one: a revoked client is
// owed no close_notify, and a client that does not read cannot make the
// close wait. It reports whether this call closed the connection.
func (g *Gateway) cut(t *tracked, reason string) bool {
	if !t.closed.CompareAndSwap(false, true) {
		return false
	}
	// A parked connection has no goroutine to notice the close and
	// forget it: whoever takes it out of the poller does (park.go).
	parked := g.poller.Load().unpark(t)
	t.raw.Close()
	if parked {
		g.untrack(t)
	}
	g.metrics.ConnectionCut(reason)
	p := t.peer
	e := accesslog.Entry{
		Time: time.Now(), Kind: KindCut, Identity: p.id, Serial: p.serial, Fingerprint: p.fingerprint,
		Client: p.client, TLSVersion: p.tlsVersion, Resumed: p.resumed, Decision: "deny", Reason: reason,
		Duration: time.Since(t.start),
	}
	if r := t.route.Load(); r != nil {
		e.Route = *r
	}
	g.logAccess(&e)
	return true
}

// onRevocations runs after every update of the revocation set: it closes
// the connections of newly revoked certificates and notices a set that
// became current again.
func (g *Gateway) onRevocations(old, new *revocation.Set) {
	defer g.recovered(panicRevocationHook)
	g.metrics.RevocationSet(new.Len(), new.Position(), new.Updated())
	for _, s := range revocation.Added(old, new) {
		if n := g.CloseBySerial(s); n > 0 {
			g.log.Info("closed connections of a revoked certificate", "serial", s, "connections", n, "position", new.Position())
		}
	}
	if keys := revocation.AddedIssuers(old, new); len(keys) > 0 {
		n := 0
		for _, t := range g.tracker.collect(func(t *tracked) bool { _, bad := issuerRevoked(new, t.peer.chain); return bad }) {
			if g.cut(t, CutRevoked) {
				n++
			}
		}
		g.log.Warn("CA certificates revoked: closed the connections of certificates issued through them", "keys", keys, "connections", n, "position", new.Position())
	}
	g.checkStale(g.clock.Now())
}

// issuerRevoked reports whether chain (leaf first, as the client sent it)
// goes through a revoked CA key: the leaf's authority key identifier, or
// the subject key identifier of a CA certificate the client sent. It
// returns the key. A chain the gateway completed from its own known
// intermediates needs no check: a revoked intermediate is not among them.
func issuerRevoked(s *revocation.Set, chain []*x509.Certificate) (string, bool) {
	if len(chain) == 0 || !s.AnyIssuerRevoked() {
		return "", false
	}
	if k := hex.EncodeToString(chain[0].AuthorityKeyId); s.IssuerRevoked(k) {
		return k, true
	}
	for _, c := range chain[1:] {
		if k := hex.EncodeToString(c.SubjectKeyId); c.IsCA && s.IssuerRevoked(k) {
			return k, true
		}
	}
	return "", false
}

// checkStale reports whether the revocation data is older than
// max_staleness at now (or was never received). The first caller to see a
// change logs it once, moves the metric and, on going stale, cuts the
// tunnels (WebSocket and TCP routes), which no later request would check.
func (g *Gateway) checkStale(now time.Time) bool {
	f := &g.fresh
	if f.max <= 0 {
		return false
	}
	stale := isStale(g.revoked.Load(), now, f.max)
	want := freshOK
	if stale {
		want = freshStale
	}
	if f.state.Load() != want {
		g.freshnessChanged()
	}
	return stale
}

func isStale(s *revocation.Set, now time.Time, max time.Duration) bool {
	u := s.Updated()
	return u.IsZero() || now.Sub(u) > max
}

// freshnessChanged re-reads the set and the clock under the lock, so that
// concurrent callers log each change once and in order.
func (g *Gateway) freshnessChanged() {
	f := &g.fresh
	f.mu.Lock()
	defer f.mu.Unlock()
	s := g.revoked.Load()
	now := g.clock.Now()
	stale := isStale(s, now, f.max)
	want := freshOK
	if stale {
		want = freshStale
	}
	prev := f.state.Load()
	if prev == want {
		return
	}
	f.state.Store(want)
	g.metrics.RevocationStale(stale)
	switch {
	case stale && s.Updated().IsZero():
		g.log.Error("no revocation data received yet: refusing every request with 503 until the revocation source answers",
			"max_staleness", f.max)
	case stale:
		g.log.Error("revocation data is stale: refusing every request with 503 until the revocation source is back",
			"last_update", s.Updated(), "age", now.Sub(s.Updated()).Round(time.Millisecond), "max_staleness", f.max, "position", s.Position())
	case prev == freshStale:
		g.log.Info("revocation data is current again: serving requests", "position", s.Position(), "revoked", s.Len())
	}
	if !stale {
		return
	}
	n := 0
	for _, t := range g.tracker.collect(func(t *tracked) bool { return t.tunnel.Load() }) {
		if g.cut(t, CutStale) {
			n++
		}
	}
	if n > 0 {
		g.log.Warn("closed tunnelled connections: revocation data is stale", "connections", n)
	}
}

// staleJSON is the body of the 503 answer while the data is stale.
func (g *Gateway) staleJSON(now time.Time) []byte {
	s := g.revoked.Load()
	if s.Updated().IsZero() {
		return errorJSON(reasonStale, fmt.Sprintf("the gateway has received no revocation data yet and refuses requests until it has (max_staleness %s)", g.fresh.max))
	}
	return errorJSON(reasonStale, fmt.Sprintf("the gateway's revocation data is stale: last updated %s ago, max_staleness is %s; requests are refused until the revocation source is back",
		now.Sub(s.Updated()).Round(time.Second), g.fresh.max))
}

// startTunnel marks t as a tunnel of route before bytes flow, and reports
// whether it may proceed: a tunnel that starts as the data goes stale is
// cut here, since the transition's cut may have missed it.
func (g *Gateway) startTunnel(t *tracked, route string) bool {
	t.route.Store(&route)
	t.tunnel.Store(true)
	if g.fresh.state.Load() == freshStale {
		g.cut(t, CutStale)
		return false
	}
	return true
}

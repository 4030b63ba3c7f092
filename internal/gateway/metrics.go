package gateway

import "time"

// Metrics receives the gateway's domain events. internal/metrics
// implements it with Prometheus; the default does nothing.
type Metrics interface {
	// Handshake counts a finished handshake: result is "ok" or a [Reason].
	Handshake(result string)
	// Request counts an HTTP request: route is "" when none matched,
	// decision "allow" or "deny".
	Request(route string, status int, decision string, total, upstream time.Duration)
	// TCPConnection counts a TCP route connection.
	TCPConnection(route, decision string, total time.Duration)
	// ActiveConnections moves the gauge of open client connections.
	ActiveConnections(delta int)
	// ParkedConnections moves the gauge of open client connections
	// waiting for their next request without a goroutine (parked: their
	// socket is watched by the gateway's poller), a part of the active
	// ones.
	ParkedConnections(delta int)
	// RevocationSet reports the size of the revoked set, the feed
	// position it reflects and when it was last confirmed current.
	RevocationSet(size int, position int64, updated time.Time)
	// RevocationStale reports entering (true) and leaving (false) the
	// fail-closed state of revocation data older than max_staleness.
	RevocationStale(stale bool)
	// ConnectionCut counts a live connection the gateway closed: reason
	// is CutRevoked, CutExpired or CutStale.
	ConnectionCut(reason string)
	// CertificateExpiry reports the NotAfter of the gateway's own
	// certificate.
	CertificateExpiry(notAfter time.Time)
	// Panic counts a panic the gateway recovered from (and logged with
	// its stack): where is "connection", "http2_request", "tunnel",
	// "sweep", "revocation_hook", "reload" or "poller".
	Panic(where string)
	// RateLimited counts a request refused 429 by its route's rate limit.
	RateLimited(route string)
	// AuthRequest counts a request by how it authenticated, where that is
	// not a certificate: legacykey.AuthLegacyKey, or AuthNone (neither a
	// certificate nor a key: refused no_certificate). Requests with a
	// certificate are the rest of Request's count, so the hot path pays
	// nothing for this.
	AuthRequest(kind string)
}

// AuthNone is the auth kind of a request with neither a certificate nor a
// key.
const AuthNone = "none"

type nopMetrics struct{}

func (nopMetrics) Handshake(string)                                          {}
func (nopMetrics) Request(string, int, string, time.Duration, time.Duration) {}
func (nopMetrics) TCPConnection(string, string, time.Duration)               {}
func (nopMetrics) ActiveConnections(int)                                     {}
func (nopMetrics) ParkedConnections(int)                                     {}
func (nopMetrics) RevocationSet(int, int64, time.Time)                       {}
func (nopMetrics) RevocationStale(bool)                                      {}
func (nopMetrics) ConnectionCut(string)                                      {}
func (nopMetrics) CertificateExpiry(time.Time)                               {}
func (nopMetrics) Panic(string)                                              {}
func (nopMetrics) RateLimited(string)                                        {}
func (nopMetrics) AuthRequest(string)                                        {}

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
	// RevocationSet reports the size of the revoked set and when it was
	// last confirmed current.
	RevocationSet(size int, updated time.Time)
	// CertificateExpiry reports the NotAfter of the gateway's own
	// certificate.
	CertificateExpiry(notAfter time.Time)
}

type nopMetrics struct{}

func (nopMetrics) Handshake(string)                                          {}
func (nopMetrics) Request(string, int, string, time.Duration, time.Duration) {}
func (nopMetrics) TCPConnection(string, string, time.Duration)               {}
func (nopMetrics) ActiveConnections(int)                                     {}
func (nopMetrics) RevocationSet(int, time.Time)                              {}
func (nopMetrics) CertificateExpiry(time.Time)                               {}

// Package accesslog writes the gateway's access log: one JSON object per
// line for every HTTP request, every TCP connection and every refused
// handshake, to standard output or to a file rotated by size.
//
// Lines are encoded by hand into a reused buffer (no reflection, no
// allocation per line) and written through a buffer flushed at least every
// [FlushInterval], so logging stays off the proxy's critical path.
//
// It is not the audit log (internal/audit, hash-chained and durable) nor the
// operational log (log/slog).
package accesslog

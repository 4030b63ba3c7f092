// Package accesslog writes the gateway's access log: one JSON object per
// line (schema [Schema], documented in docs/gateway.md) for every HTTP
// request, every TCP connection and every refused handshake, to several
// outputs at once ([Open]): a file rotated by size and time with gzip and
// retention by count, age and total size; standard output; a syslog
// collector (internal/syslog, with its spool).
//
// [Logger.Log] encodes a line once (by hand, no reflection, no allocation)
// and copies it into each output's bounded queue; each output's goroutine
// writes. A full queue drops the line and counts it (or, with
// Options.Block, waits); drops are reported at most once a second.
//
// With FileOptions.Checkpoint, every rotated file is sealed with a hash
// chain and a signed checkpoint (internal/checkpoint), and [Verify] proves
// no line or file was removed or edited.
//
// It is not the audit log (internal/audit, hash-chained in the store) nor
// the operational log (log/slog).
package accesslog

// Package syslog ships lines to a syslog collector: RFC 5424 messages in
// RFC 6587 octet-counted frames over TCP or TLS, with a delivery story an
// operator can state.
//
// # The door
//
// Build a message with [Message.Append] (or [AppendFrame] for a framed
// one), then hand it to a [Client] made by [New]:
//
//	c, err := syslog.New(syslog.Config{Address: "logs:6514", TLS: tlsConf,
//		SpoolDir: dir, SpoolMaxBytes: 1 << 30})
//	...
//	c.Send(frameBytes) // never blocks under the default OverflowDrop
//	...
//	c.Close(ctx)       // delivers (or spools) what is queued
//
// A Client owns one connection and one sender goroutine. [Client.Send]
// copies the message into a bounded in-memory queue and returns. The
// sender writes the queue to the collector; while the collector cannot be
// reached it reconnects with exponential backoff and moves the queue into
// an on-disk spool (a FIFO of segment files under SpoolDir, at most
// SpoolMaxBytes), which it delivers first, in order, once the collector is
// back. When the queue and the spool are both full, [Config.Overflow]
// decides: [OverflowDrop] (the default) drops the message and counts it
// ([Stats].Dropped), [OverflowBlock] makes Send wait.
//
// # What it guarantees, and what it cannot
//
// Lines are delivered in order and a line is dropped only by the overflow
// policy, counted. Octet-counted syslog has no acknowledgement: a line is
// "delivered" once the collector's TCP stack has it. A collector that
// closes its connection (a restart) is noticed at once (the sender reads
// the connection; a collector never writes) and nothing is written after
// that; lines its kernel held but it had not read when it died are beyond
// any sender's knowledge. A spool survives a restart of the process
// (Close records how far its head was sent); it is not fsynced per line, so
// a machine crash may lose its last page-cache writes.
//
// It is not a syslog server, and it does not speak RFC 3164 or RELP.
// [Parse] and [ReadFrame] exist for tests and receivers that check what a
// Client sent. The gateway's access log (internal/accesslog) and the audit
// export use it.
package syslog

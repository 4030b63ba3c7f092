// Package feed is the ordered event stream from certgate servers to
// gateways (and any other follower): revocations as they are committed,
// each with a monotonic position, plus heartbeats.
//
// # Protocol
//
// GET /v1/feed over mTLS streams JSON lines (application/x-ndjson), easy
// to follow by hand with curl -N:
//
//	{"type":"snapshot","position":12,"revoked":[{"serial":"…","identity":"…","reason":1,"not_after":"…"}]}
//	{"type":"revoke","position":13,"serial":"…","identity":"…","reason":1,"not_after":"…","time":"…"}
//	{"type":"heartbeat","position":13,"time":"…"}
//
// Without ?after= the stream starts with a snapshot of every revoked,
// unexpired certificate and the position it is current to, then deltas.
// With ?after=N it resumes with the events after position N, so a follower
// that reconnects misses nothing and repeats nothing. Heartbeats prove the
// stream is alive when nothing happens; a follower that hears nothing for
// longer than its staleness limit knows it may be missing revocations.
//
// This package is the protocol ([Message], [ParseMessage]) and the
// [Follower], which reads the stream, keeps a revocation.Set current and
// reconnects with backoff, failing over between server URLs. The server
// half, which reads the store, is internal/server/feedserver: gateways and
// Go services link this package and must not link the store.
package feed

// Package loadgen drives enrollment load against a running certgate server
// and measures it: enrollments per second and the latency distribution
// (p50, p90, p99), with failures counted by their API error code.
//
// The work is prepared before the clock starts: [Prepare] mints the tokens
// through the admin API and makes a key and a CSR for each, and encodes
// every request body, so the figures measure the server (token + CSR ->
// durable record -> certificate) and not the client's key generation.
// [Run] then sends the prepared enrollments over N keep-alive TLS
// connections, one per client, each warmed up by one request before the
// measurement: the figures are enrollments, not TLS handshakes.
//
// It is a measuring tool for "certgate bench enroll" and
// scripts/bench-enroll.sh. It is not a client to enroll real workloads with
// (that is internal/enroll), and it does not verify the certificates it gets
// back beyond their presence: checking them would spend the load generator's
// CPU, and the end-to-end tests verify certificates already.
package loadgen

// Package loadgen drives issuance load against a running certgate server
// and measures it: enrollments or renewals per second and the latency
// distribution (p50, p90, p99), with failures counted by their API error
// code.
//
// The work is prepared before the clock starts, so the figures measure the
// server and not the client's key generation:
//
//   - Enrollment: [Prepare] mints the tokens through the admin API, makes a
//     key and a CSR for each and encodes every request body. [Run] sends
//     them over N keep-alive TLS connections, one per client, each warmed
//     up by one request before the measurement: the figures are
//     enrollments, not TLS handshakes.
//   - Renewal: [PrepareAgents] enrolls agents through the API (their
//     current certificates, keys kept in memory only) and makes a new key
//     and CSR for each. [RunRenew] renews each agent once, N at a time,
//     every renewal on a NEW TLS connection presenting the agent's current
//     certificate: full handshakes, or, after [WarmSessions], resumed
//     sessions (each agent resumes the session it opened with its current
//     certificate). [RunStorm] makes every agent renew once at a random
//     moment of a window, whatever is in flight.
//
// The renewal client writes its HTTP/1.1 request by hand and verifies the
// server's chain once, then pins its leaf (a changed leaf is verified in
// full again), so that the load generator's own CPU goes to the handshake
// the server also pays for, not to work the server never sees.
//
// It is a measuring tool for "certgate bench enroll", "bench renew",
// "bench storm" and scripts/bench-enroll.sh and bench-renew.sh. It is not a
// client to enroll or renew real workloads with (that is internal/enroll
// and internal/agent). Enrollment answers are checked for presence only;
// renewal answers are parsed and checked (identity, certificate for the new
// key), which costs the load generator about one certificate parse each.
package loadgen

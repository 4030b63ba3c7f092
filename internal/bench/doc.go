// Package bench is every mode of `certgate bench`: it loads a certgate
// server or an mTLS endpoint on this machine and measures it, and serves
// the baseline and the upstream the gateway is compared with. Each mode is
// options, a run, and a result that prints itself:
//
//   - [RunTLS]: full handshakes, resumed handshakes or keep-alive requests
//     per second against one mTLS endpoint or two side by side (the gateway
//     and [ServeBaseline]), with the servers' CPU time per operation
//     ([ProcessCPU]) and their ratio. [ServeUpstream] is the minimal
//     upstream both proxy to.
//   - [RunEnroll]: enrollments per second and their latency.
//   - [RunRenew]: renewals per second, each on a new mTLS connection, by
//     full handshake or resumed session; with RenewOptions.Storm every
//     agent renews once at a random moment of a window.
//   - [RunRevoke]: how fast a revocation reaches every gateway process:
//     connections closed, handshakes refused.
//
// Underneath is the issuance load generator, usable on its own (the
// server's `go test -bench` baselines use it). The work is prepared before
// the clock starts, so the figures measure the server and not the
// client's key generation:
//
//   - Enrollment: [Prepare] mints the tokens through the admin API, makes a
//     key and a CSR for each and encodes every request body. [Enroll] sends
//     them over N keep-alive TLS connections, one per client, each warmed
//     up by one request before the measurement: the figures are
//     enrollments, not TLS handshakes.
//   - Renewal: [PrepareAgents] enrolls agents through the API (their
//     current certificates, keys kept in memory only) and makes a new key
//     and CSR for each. [Renew] renews each agent once, N at a time, every
//     renewal on a NEW TLS connection presenting the agent's current
//     certificate: full handshakes, or, after [WarmSessions], resumed
//     sessions (each agent resumes the session it opened with its current
//     certificate). [Storm] makes every agent renew once at a random moment
//     of a window, whatever is in flight.
//
// The clients are kept cheap so that they load the server, not themselves:
// requests are written by hand, answers read no further than needed, and
// the server's chain is verified once, then its leaf pinned (a changed leaf
// is verified in full again).
//
// Options are checked by their Check methods; an error about a field names
// the `certgate bench` flag that sets it, since that is who reads it.
//
// It is a measuring tool for `certgate bench` and scripts/bench-*.sh. It
// is not a client to enroll or renew real workloads with (that is
// internal/enroll and internal/agent). Enrollment answers are checked for
// presence only; renewal answers are parsed and checked (identity,
// certificate for the new key), which costs the load generator about one
// certificate parse each. Every load targets the addresses it is given;
// the scripts and tests give it 127.0.0.1 only.
package bench

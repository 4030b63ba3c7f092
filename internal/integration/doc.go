// Package integration holds the tests that run certgate as a whole on
// 127.0.0.1: real servers (in-process, or `certgate server` processes that
// are killed and restarted), real gateways following their change feed,
// clients over mTLS, PostgreSQL-backed replicas, and the quickstart. They
// share one harness, internal/testenv (the control plane, upstreams, a TCP
// echo backend, a link that can be cut, the certgate binary and its
// processes) with internal/testenv/gatewaytest (a gateway as `certgate
// gateway` runs it).
//
// The package has no code of its own: only tests. PostgreSQL tests skip
// with a message where no server is reachable, and fail instead under
// CERTGATE_REQUIRE_POSTGRES=1 (CI).
package integration

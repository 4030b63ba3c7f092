// Package testenv is a running certgate control plane for tests, one per
// test: a real CA (ca.CreateRoot and ca.CreateIntermediate, ECDSA P-256),
// the real SQLite store in a temporary directory, the CA service, and the
// real server serving HTTPS on 127.0.0.1, with an admin client certificate.
// [Start] builds it and stops it when the test ends; options choose the
// clock, the trust domain, the listener, and wrap the store for fault
// injection. Helpers issue certificates directly, mint tokens, make API
// clients and write credential directories the way `certgate enroll` does.
// For a fake clock, pass a *clock.Fake (internal/clock) to [WithClock]:
// its waits fire when the test advances it, for code that sleeps on its
// clock (the agent).
//
// Around it, what a test of the whole system needs: an HTTP [Upstream]
// that names the identity the gateway forwarded (and echoes WebSocket
// frames), a TCP [EchoBackend], a [Link] between two parts that the test
// cuts and restores, and the certgate binary ([Certgate], built once per
// test binary) with [CLI] and [StartServerProcess] for tests that need
// real processes. A gateway running as `certgate gateway` runs it is in
// the subpackage gatewaytest (its runtime imports packages whose own tests
// use this one).
//
// It exists so that each package's tests do not build the same stack
// again, slightly differently. It is not the CA directory on disk that
// `certgate init` makes (cmd/certgate tests that exercise the commands use
// the real one), and it is not a test CA for unit tests that need no
// server or store (see internal/testca). Only _test.go files may import it.
//
// Tests inside package server, certstatus, feed or any other package the
// server imports cannot use it: it imports internal/server, and that would
// be an import cycle.
package testenv

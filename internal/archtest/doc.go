// Package archtest holds no code, only the test of the repository's import
// rules, which docs/architecture.md states: what the client side (the SDK,
// the agent, enrollment, the gateway, the load generator) may link, that
// clients speak the /v1 wire types and never import the server, that only
// the store imports a database driver, only internal/metrics Prometheus,
// that test helpers stay in tests, and that cmd/certgate wires packages
// together instead of implementing protocols or cryptography itself.
//
// The test reads the import graph with `go list -deps -json`, as the go
// command resolves it for this platform, and reports every broken rule with
// the chain of imports that breaks it.
package archtest

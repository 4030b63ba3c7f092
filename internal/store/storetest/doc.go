// Package storetest is the conformance suite every [store.Store] backend
// runs, and the test helpers other packages use to get a store.
//
// [Run] checks each method and each documented error against a fresh store
// per subtest: concurrent redemption of one token (exactly one wins),
// expired and unknown tokens, duplicate serials (the token stays unused),
// revocation by serial, identity and identity prefix (segment boundaries,
// wildcard characters), concurrent revocations of one serial, event
// positions without gaps under concurrency, consistent revocation
// snapshots, and an audit chain that verifies after a mixed concurrent
// workload.
//
// For other packages' tests: [NewSQLite] opens a real SQLite store in
// t.TempDir() (the store fake is the real thing), [PostgresURL] makes a
// fresh PostgreSQL schema or skips, and [Faulty] injects failures into any
// method.
//
// It is not a place for backend-specific tests (durability, migrations,
// benchmarks): those live next to the backend in package store.
package storetest

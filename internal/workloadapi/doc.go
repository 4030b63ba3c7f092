// Package workloadapi serves the SPIFFE Workload API (the X.509 half:
// FetchX509SVID and FetchX509Bundles) on a unix socket, from the
// credentials the agent keeps renewed, so that go-spiffe, java-spiffe and
// py-spiffe programs use certgate identities unchanged.
//
// Callers are identified by the kernel (SO_PEERCRED on the unix socket),
// never by anything they send, and served only if their uid or gid is on
// the allow list. Every call must carry the "workload.spiffe.io: true"
// metadata the specification requires. FetchX509SVID and FetchX509Bundles
// stream: a new message after every renewal, on the same connection.
// JWT-SVIDs and WIT-SVIDs are not offered (Unimplemented): certgate issues
// X.509 certificates only.
//
// It is not the agent: it renews nothing. internal/agent tells it of each
// renewal (Server.Update).
package workloadapi

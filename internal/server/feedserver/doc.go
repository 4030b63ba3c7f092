// Package feedserver is the server half of the change feed: it writes the
// stream that internal/feed describes and its follower reads, from the
// store's event log, to one follower per HTTP request. internal/server
// mounts it at GET /v1/feed behind its authentication.
//
// It lives beside the server, not in internal/feed, because it reads the
// store: the feed's protocol and follower are linked into gateways and Go
// services (certgatetls), which must not link the store or its database
// drivers.
//
// A stream starts with a snapshot (or, with ?after=N, resumes after
// position N), then sends each revocation as the store commits it, woken
// by a [Notifier] and polling as a backstop, with heartbeats when idle.
package feedserver

// Package authz decides which identities may use which routes.
//
// A [Policy] is an ordered list of [Route]s, each matching a host, a path
// prefix (whole segments) and a set of methods, and allowing identities by
// exact SPIFFE ID or by a pattern ending in "/*" that matches every ID below
// that path. The first route that matches a request decides it; a request
// no route matches is denied. [Policy.Authorize] allocates nothing, so it
// can run on every request.
//
// This package knows nothing about TLS, certificates or upstreams: callers
// pass the identity string the handshake established, and attach their own
// data to a route by its index.
package authz

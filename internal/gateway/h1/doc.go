// Package h1 is certgate's HTTP/1.1 codec: it reads and parses request and
// response heads, decodes and re-encodes chunked bodies, copies bodies by
// their framing, and appends status lines and header fields to a buffer.
//
// It is strict on purpose. A proxy and the server behind it must agree on
// where one message ends and the next begins, or a client can smuggle a
// second request past the proxy's checks (RFC 9112 section 11.2). So
// [ParseRequest] refuses every shape a downstream parser could read
// differently: Content-Length together with Transfer-Encoding, repeated
// framing headers, a Content-Length that is not plain digits, transfer
// codings other than chunked, obsolete line folding, whitespace before a
// colon, bare CR, control characters in values, more than one Host. Each
// refusal is an [*Error] carrying the status to answer and a short stable
// reason for the access log.
//
// Parsing allocates nothing in the steady state: a [Request] or [Response]
// holds slices into the head buffer the caller passed, valid until the
// next head is read into it.
//
// This package knows nothing about TLS, routes, identities or upstreams;
// it does not decide what a request path means (the gateway canonicalizes
// it) nor which headers a proxy forwards.
package h1

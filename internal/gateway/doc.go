// Package gateway is certgate's data plane: an mTLS reverse proxy that lets
// a request through only when the client proved possession of a key whose
// certificate chains to the trust bundle, is valid now, carries clientAuth
// and a SPIFFE ID of the trust domain, is not revoked, and whose identity
// the first matching route allows.
//
// # Handshake
//
// Verification runs in tls.Config.VerifyConnection, on full and resumed
// handshakes alike; a refusal ends the handshake before a byte reaches an
// upstream and carries a [Reason] to the access log and the metrics.
// Intermediates that verified once are cached per trust generation, so a
// handshake checks one signature (the leaf's) instead of building a chain.
// Resumed sessions are checked again for expiry and revocation; crypto/tls
// refuses to resume past the certificate's NotAfter by the injected clock,
// and ticket keys rotate when the bundle changes.
//
// # Requests
//
// HTTP/1.1 clients are served by a small engine of this package: one
// goroutine per connection reads a request head with a strict parser
// (request smuggling shapes are refused with 400), authorizes it
// ([authz.Policy.Authorize], no allocation), and forwards it over a pooled
// keep-alive upstream connection, streaming bodies both ways. HTTP/2
// clients are served by golang.org/x/net/http2 and forwarded through
// net/http's Transport. Identity headers (RFC 9440 Client-Cert and
// Client-Cert-Chain, X-Forwarded-Client-Cert, X-Client-Identity,
// X-Client-Cert-Serial) are set per route; copies sent by a client are
// always removed. TCP routes pipe raw bytes after the same checks.
//
// # Connections
//
// Every connection is tracked by certificate serial: it is closed when the
// certificate expires (by the injected clock) and, through
// [Gateway.CloseBySerial], when it is revoked.
//
// This package does not issue certificates, fetch revocations (see
// internal/revocation) or read config files (see internal/config).
package gateway

// Package gateway is certgate's data plane: an mTLS reverse proxy that lets
// a request through only when the client proved possession of a key whose
// certificate chains to the trust bundle, is valid now, carries clientAuth
// and a SPIFFE ID of the trust domain, is not revoked, and whose identity
// the first matching route allows.
//
// # Handshake
//
// Verification runs in tls.Config.VerifyConnection, on full and resumed
// handshakes alike; a refusal carries a [Reason] to the access log and the
// metrics, and nothing of the connection ever reaches an upstream. On the
// HTTP listener a refused client's handshake completes and each of its
// requests, HTTP/1.1 or HTTP/2, is answered 401 (no certificate) or 403
// (a certificate refused: unknown CA, expired, not yet valid, wrong
// usage, identity outside the trust domain, revoked) with a JSON body
// naming the reason, what to do and the check that failed, as nginx
// answers 495 and 496; a TLS alert could only say bad_certificate, and
// in TLS 1.3 curl shows it as a socket error. Such a session is never
// resumed. TCP routes, which have no HTTP, refuse in the handshake with a
// TLS alert (certificate_required for no certificate in TLS 1.3,
// bad_certificate otherwise). docs/gateway.md shows what curl, openssl,
// Python, Node and Go print for each.
// Every verdict is the one x509.Verify gives with the bundle's roots as
// anchors and, as intermediates, what the client sent plus the known
// intermediates (the CA certificates of the gateway's own chain, and what
// [Gateway.SetIntermediates] adds, such as the CA's next intermediate
// from the server's feed), so a client that sends only its leaf verifies;
// then the leaf must name clientAuth, not be a CA, and carry a SPIFFE ID
// of the trust domain. An issuer (a root, or an intermediate right below
// one) that verified once is cached per trust generation, so a repeat
// client's handshake checks one signature instead of building a chain;
// the cache serves only leaves whose verdict cannot depend on more than
// their issuer (one URI and no other name, no policy extension, no
// unknown critical extension), only an issuer that is in the pool
// x509.Verify would use and whose subject is the leaf's issuer name byte
// for byte, and on any miss it falls back to x509.Verify: it may accept
// sooner, never differently. TestChainDifferential holds it to that over
// tens of thousands of generated chains. A leaf whose signature was
// checked under a cached issuer is remembered by the SHA-256 of its DER
// (bounded, per trust generation), so the same certificate's next full
// handshake skips that one signature check and nothing else.
// Resumed sessions are checked again for expiry and revocation; crypto/tls
// refuses to resume past the certificate's NotAfter by the injected clock,
// and ticket keys rotate when the bundle changes.
//
// # Requests
//
// HTTP/1.1 clients are served by a small engine of this package: one
// goroutine per connection reads a request head with the strict codec of
// internal/gateway/h1 (request smuggling shapes are refused with 400),
// authorizes it ([authz.Policy.Authorize], no allocation), and forwards it
// over a pooled keep-alive upstream connection, streaming bodies both ways.
//
// Before any route decision, every request's method, host and path are
// put in canonical form once, by internal/gateway/canon, whose package
// documentation states the semantics and how they relate to Envoy's
// normalize_path, merge_slashes and path_with_escaped_slashes_action and
// to nginx's URI normalization: unreserved characters decoded, repeated
// slashes merged, and refused with 400 and a logged reason whatever an
// upstream could read two ways (encoded slashes and backslashes, dot
// segments raw or encoded at any decoding depth, NUL and control bytes,
// overlong UTF-8, double encoding). The route is matched on the canonical
// path and the canonical path is what is forwarded, for HTTP/1.1 (origin
// or absolute form, whose authority must equal Host), HTTP/2 (:path), a
// WebSocket upgrade and [Explain] (policy test) alike. Methods are read
// case-insensitively and forwarded upper case; unknown ones get 501. The
// config's paths section sets the three choices the policy has. HTTP/2
// clients are served by golang.org/x/net/http2 and forwarded through
// net/http's Transport. Identity headers (RFC 9440 Client-Cert and
// Client-Cert-Chain, X-Forwarded-Client-Cert, X-Client-Identity,
// X-Client-Cert-Serial) are set per route, with the forwarding headers
// (X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Real-IP,
// Forwarded); a client header whose name, lower-cased with '_' read as
// '-', is one of those or any X-Forwarded-* is always removed
// ([StrippedRequestHeaders]), since CGI and WSGI servers merge
// X_Client_Identity with X-Client-Identity. TCP routes pipe raw bytes
// after the same checks.
//
// # Connections
//
// Every connection is tracked by certificate serial: it is closed when the
// certificate expires (by the injected clock) and, through
// [Gateway.CloseBySerial], when it is revoked. The revocation Holder's
// change hook runs CloseBySerial for every newly revoked serial as soon as
// the set is swapped, so an HTTP/1.1 keep-alive connection, a whole HTTP/2
// connection, a WebSocket and a TCP route connection of that certificate
// are cut together, by closing the TCP connection (a revoked client is owed
// no close_notify, and one that does not read cannot delay the cut). A
// handshake that was verified just before the swap is checked again once
// its connection is tracked, so none slips between the two. Each cut is an
// access log entry of kind [KindCut] with its reason ([CutRevoked],
// [CutExpired], [CutStale]) and is counted by [Metrics.ConnectionCut].
//
// # Panics
//
// No input may end the process: every goroutine the gateway starts (a
// connection from its handshake to its close, a tunnel's second copy, the
// sweep) and every HTTP/2 request recovers a panic, logs it with its stack
// and counts it ([Metrics.Panic], certgate_gateway_panics_total); only the
// connection (for HTTP/2, the stream) it happened in is lost. So do the
// revocation hook and a reload, which keeps the running config.
//
// # Stale revocation data
//
// With [Options.MaxStaleness] set, the gateway fails closed when its
// revocation set was last confirmed current (Set.Updated, which the change
// feed refreshes on every event and heartbeat) longer ago than that by the
// injected clock, or never: every HTTP request gets 503 with a JSON body
// naming the reason (code "revocation_stale"), new TCP route connections
// are refused, and tunnels (WebSocket, TCP) are cut, since no later request
// would check them. Until then it enforces the set it knows. Entering and
// leaving the state are logged once each and reported by
// [Metrics.RevocationStale]; the first update after the source is back
// ends it.
//
// # The gateway's own certificate
//
// The gateway serves TLS with, and presents to https upstreams that ask for
// it (upstream_client_cert), either the certificate and key files of its
// config (reloaded with the config) or, with [Options.Certificate], whatever
// the gateway's renewing agent holds now. Either way the certificate is
// read at each handshake: a renewal applies to the next client and the next
// upstream connection, while connections already open carry on with the
// certificate they were made with, so a rotation drops nothing. Upstream
// TLS sessions are cached per certificate, so none made with the old one
// is resumed after a rotation. [Metrics.CertificateExpiry] follows the
// current certificate.
//
// # Configuration
//
// [New] and [Gateway.Reload] take a [Config]: the YAML schema of
// internal/config compiled once ([NewConfig], [LoadConfig]) into what the
// request path reads, with the files it names read and the routes built.
//
// This package does not issue certificates, fetch revocations (see
// internal/revocation and internal/feed) or read config files (see
// internal/config).
package gateway

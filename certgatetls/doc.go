// Package certgatetls lets a Go program use certgate certificates directly:
// as a client that calls APIs behind a certgate gateway with a certificate
// that rotates itself, and as a server that accepts certgate clients
// without a gateway in front.
//
// # Credentials on disk
//
// A credentials directory is the one format every certgate client shares:
// `certgate enroll --out DIR` writes it, `certgate agent --dir DIR` renews
// it in place, a gateway keeps its own identity in one, and this package
// reads it. This package owns the format: [ReadCredentials] and
// [WriteCredentials] are its reader and writer, and the commands above use
// them. The files:
//
//   - key.pem ([KeyFile]): the private key, PKCS#8 PEM, mode 0600,
//     generated on this machine and never sent anywhere.
//   - or key.uri ([KeyURIFile]) instead, when the key was generated inside
//     a PKCS#11 token (certgate enroll --key-store pkcs11): the RFC 7512
//     URI that finds it there, mode 0600; the key never leaves the token.
//     Or inside a TPM 2.0 (--key-store tpm): a tpm: URI naming the TPM and
//     holding the key's blobs as the TPM wrapped them, which only that TPM
//     can load (see internal/devicekey); the key never leaves the TPM.
//   - cert.pem ([CertFile]): the certificate chain, PEM, the leaf first,
//     then the intermediate. The leaf carries exactly one SPIFFE ID.
//   - bundle.pem ([BundleFile]): the trusted roots, PEM.
//   - server.url ([ServerURLFile]): the certgate server, https://HOST:PORT
//     and a newline, from the enrollment token, so that the agent knows
//     where to renew ([ReadServerURL], [WriteServerURL]).
//
// The agent adds combined.pem (the chain followed by the key, 0600, in one
// file for readers that must never see a mismatched pair) and
// agent-status.json (its last state); neither is needed to use the
// credentials.
//
// Every file is replaced atomically (a temporary file, fsync, rename), the
// key first, then the certificate, then the bundle: a cert.pem on disk
// always has its key beside it, and a reader of the two may see the new key
// beside the old certificate only for as long as one rename takes
// ([ErrKeyMismatch]; read again).
//
// A [Source] loads the three files, checks them against each other (the key
// must match the leaf, the chain must verify against the bundle, the leaf
// must carry one SPIFFE ID) and looks at them again every few seconds
// ([WithPollInterval]) or when asked ([Source.Reload]). New files replace
// the credentials in use atomically; files that fail a check, such as a new
// key beside the old certificate between the agent's two writes, are
// ignored, the current credentials stay, and the source looks again within
// milliseconds. Readers never block.
//
// # Client
//
// [NewHTTPClient] returns a [net/http.Client] that presents the source's
// certificate ([Source.GetClientCertificate]) and trusts only servers whose
// certificate chains to the bundle, over TLS 1.2 or 1.3 with forward-secret
// AEAD suites. After a rotation the next request opens a new connection
// pool, so new requests use the new certificate while requests in flight
// finish on their connections: a rotation fails no request. For other
// protocols (gRPC, raw TLS) put [Source.GetClientCertificate] and
// [Source.Roots] into a [crypto/tls.Config] yourself.
//
// # Server
//
// [ServerConfig] returns a [crypto/tls.Config] for a Go service that
// terminates certgate mTLS itself. It refuses a client that sends no
// certificate, whose chain does not verify against the bundle, whose leaf is
// expired or lacks the clientAuth extended key usage, whose SPIFFE ID is of
// another trust domain, whose certificate is revoked, or whose identity the
// [Authorizer] rejects; each refusal wraps an Err* variable of this package
// and is logged with its reason. [IdentityFromRequest] gives a handler the
// caller's SPIFFE ID.
//
// # Revocation and the service's identity
//
// Revocation is checked against an in-memory set that [StartRevocations]
// keeps current the way the gateway does: by default it follows the
// server's change feed (GET /v1/feed), so a revocation is in the set as
// soon as the server has committed it, usually within milliseconds; with
// [RevocationPull], or against a server without the feed, it fetches the
// whole set (GET /v1/revocations) every [RevocationOptions.Refresh]
// instead. When the server cannot be reached the last set stays in force
// (the feed reconnects with backoff and resumes where it stopped), and once
// the set has gone unconfirmed for longer than
// [RevocationOptions.MaxStaleness] every client is refused (fail closed).
// The feed confirms the set with every message, heartbeats included, so an
// idle feed does not make it stale.
//
// The server hands that list only to gateways and admins, and a Go service
// that accepts certgate clients does exactly what a gateway does, so it is
// enrolled as one: its identity is spiffe://TD/gateway/<name>, with a
// gateway certificate (serverAuth and clientAuth, with the service's host
// names). One credentials directory then serves TLS, verifies clients and
// fetches revocations, and the agent renews it like any other. We chose this
// over a new kind of identity because it needs no new server policy, and
// because an operator reading the inventory sees at a glance every place
// that enforces certgate access: a "gateway" is anything that lets certgate
// clients in.
//
// A [crypto/tls.Config] checks at each handshake, full or resumed, so it
// cannot stop a keep-alive connection that is already open when its
// certificate is revoked. Wrap the handler with [RejectRevoked] to check
// every request as well, and keep http.Server.IdleTimeout short; or put the
// gateway in front, which also closes such connections.
//
// # What this package is not
//
// It does not enroll or renew (that is `certgate enroll` and `certgate
// agent`, which write the files with this package's writer), it does not route or
// proxy (that is the gateway), and it has no per-route policy language
// beyond the [Authorizer] hook.
package certgatetls

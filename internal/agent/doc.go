// Package agent is the client daemon behind `certgate agent`: it keeps the
// credentials that `certgate enroll` wrote into a directory fresh, and can
// lend them to a local application through a forward proxy.
//
// # Renewal
//
// [Agent.Run] renews the certificate over mTLS, authenticated by the current
// certificate, at a random point uniformly in [0.6, 0.7] of its lifetime
// (NotBefore to NotAfter; the jitter spreads a fleet enrolled at the same
// moment). Every renewal makes a new key of the current key's type; the old
// key is never reused. The request names the current certificate's DNS and
// IP names, if any (a gateway's serving certificate), and the answer must
// name them too. A failed attempt is retried with exponential backoff
// (1 s doubling to at most 5 min, each delay times a random factor in
// [0.8, 1.2)), never scheduled past the certificate's expiry, and the
// current certificate stays in use meanwhile; every failure logs how long
// the certificate has left. The server's refusals "revoked", "expired" and
// "unknown_certificate" are final: the agent stops and says to enroll again
// with a new token. An agent whose certificate has already expired does not
// try at all.
//
// # Files
//
// After a renewal the agent replaces, each atomically (write a temporary
// file, fsync, rename): key.pem (0600), then cert.pem, then bundle.pem, then
// combined.pem (0600, the chain followed by the key, in one file). Key first
// means that once cert.pem shows the new certificate its key is already in
// place; between the two renames a reader that reads key.pem and cert.pem
// separately may see the new key with the old certificate, for as long as
// one rename takes. Readers that cannot tolerate even that read combined.pem,
// which always holds a matching pair, or reload from the --on-renew hook,
// which runs only once every file is written. combined.pem is also written
// at start when it does not hold the current certificate (enroll does not
// write it). The agent writes agent-status.json after every attempt;
// [ReadStatus] reads it. The server URL, given once, is kept in server.url
// (see [ServerURL]).
//
// # Time
//
// Every decision uses the injected [Clock]: when to renew, whether the
// certificate has expired, and the validity of the server's and the
// gateway's certificates, so that tests can run whole lifetimes on a fake
// clock shared with a real server and gateway. Waits are absolute
// deadlines, cut into naps of at most a minute so that a machine waking
// from suspend notices a renewal that fell due while it slept.
//
// # Forward proxy
//
// [NewProxy] is a plain-HTTP reverse proxy for loopback use: it reaches the
// gateway over mTLS with whatever certificate is current at each new
// connection. A renewal retires the proxy's connection pool: idle
// connections close at once and busy ones as soon as their request ends, so
// no request lands on a connection the gateway is about to cut at the old
// certificate's expiry. A bodyless idempotent request whose connection fails
// under it is retried once.
//
// # A gateway's own certificate
//
// [SetupGateway] gives `certgate gateway` its serving certificate the way
// a client gets one: on first start it redeems an enrollment token for
// spiffe://TD/gateway/<name> (identity.GatewayPrefix) with the gateway's
// host names into the identity directory, and returns an [Agent] that the
// gateway runs to renew it; later starts reuse the directory and need no
// token until the certificate has expired.
//
// This package is not an enrollment client (see internal/enroll) and not a
// general-purpose proxy: the proxy exists so an application that cannot do
// mTLS itself can borrow the agent's identity, and must therefore listen on
// loopback only.
package agent

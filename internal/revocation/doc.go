// Package revocation holds the gateway's in-memory set of revoked
// certificate serials and the sources that keep it current.
//
// A [Set] is immutable: a lookup is one map access with no lock, and a new
// snapshot replaces the old one atomically in a [Holder]. A [Source] feeds a
// Holder; [Puller] is the one that polls the server's GET /v1/revocations
// over mTLS (failing over between replicas with [NewFailoverPuller]), and
// the push feed (internal/feed) implements the same interface.
//
// Serials are compared in one canonical spelling, lowercase hexadecimal
// without leading zeros ([SerialOf], [CanonicalSerial]).
//
// This package does not decide what a revoked certificate means for a
// connection (the gateway does), and it does not build CRLs or answer OCSP.
package revocation

// Package tlspolicy is certgate's one TLS policy, applied to every server
// and client it runs: TLS 1.2 minimum (1.3 is preferred by crypto/tls when
// both sides have it), forward-secret AEAD cipher suites only, and no
// renegotiation.
//
// It exists so that the control plane, the gateway, the agent and the SDK
// cannot drift apart: a suite removed here is removed everywhere.
package tlspolicy

import "crypto/tls"

// MinVersion is the lowest protocol version certgate speaks.
const MinVersion = tls.VersionTLS12

// CipherSuites are the TLS 1.2 suites certgate allows: ECDHE key exchange
// (forward secrecy) with AES-GCM or ChaCha20-Poly1305. No CBC, no RSA key
// transport, no SHA-1 MACs. TLS 1.3 suites are not configurable in
// crypto/tls and are all AEAD.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Apply sets the policy on c (which it returns, for chaining). It
// overrides MinVersion, CipherSuites and Renegotiation and leaves every
// other field alone.
func Apply(c *tls.Config) *tls.Config {
	c.MinVersion = MinVersion
	c.CipherSuites = CipherSuites
	c.Renegotiation = tls.RenegotiateNever
	return c
}

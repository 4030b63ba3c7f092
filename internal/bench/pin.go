package bench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// pinVerifier verifies the server's chain on the first handshake and then
// accepts the same leaf without a chain build: a client full handshake
// would otherwise spend three ECDSA verifications of the load generator's
// CPU on a chain it has already checked, work the server never sees. A new
// leaf (the server renewed its certificate) is verified in full again.
type pinVerifier struct {
	roots  *x509.CertPool
	name   string // the host name the leaf must be valid for
	pinned atomic.Pointer[[]byte]
}

// verify is a tls.Config.VerifyConnection; the config sets
// InsecureSkipVerify so that this is the only check.
func (p *pinVerifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("bench: server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if pin := p.pinned.Load(); pin != nil && bytes.Equal(*pin, leaf.Raw) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, DNSName: p.name}); err != nil {
		return fmt.Errorf("bench: server certificate: %w", err)
	}
	raw := leaf.Raw
	p.pinned.Store(&raw)
	return nil
}

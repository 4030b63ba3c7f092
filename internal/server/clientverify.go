package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/identity"
)

// clientVerifier verifies client certificates for the server's TLS config
// (ClientAuth is RequestClientCert and this is its VerifyConnection).
//
// Most clients present a leaf of the CA's own intermediate, the one this
// server signs with. Its chain to the roots never changes while the server
// runs, so it is verified once, at start, and a leaf of it is verified by
// x509.Verify with that intermediate as the only root: one signature check
// instead of two, on every full handshake, and every renewal is a new
// connection. Everything else x509.Verify checks on the leaf (validity,
// clientAuth usage, critical extensions) is unchanged. What the shortcut
// leaves out is the root's own checks, so it is taken only when they
// cannot matter: the whole chain is valid now (the root's validity is
// checked here), and the leaf names nothing but one URI, which must be in
// the trust domain (the root's name constraint; checked here with
// identity.FromCertificateIn, as every handler does anyway). Any other
// certificate, or one the shortcut refuses, is verified in full against the
// roots with the intermediates the client sent, as crypto/tls would.
//
// A resumed session carries the certificates verified at its full
// handshake; they are checked again for validity at now only, as
// crypto/tls does for VerifyClientCertIfGiven.
type clientVerifier struct {
	roots       *x509.CertPool
	trustDomain string
	now         func() time.Time

	issuer *x509.Certificate // nil: no shortcut
	own    *x509.CertPool    // issuer alone
	// notBefore, notAfter: when issuer and the root it chains to are both
	// valid.
	notBefore, notAfter time.Time

	// bootstrap are the roots of EST bootstrap certificates: a client
	// certificate that chains to none of the CA's roots may still complete
	// the handshake if it chains to one of these. It is good for nothing
	// but /.well-known/est/simpleenroll: every other handler finds it
	// unknown to the store (authenticate, renewal).
	bootstrap []*x509.CertPool
}

func newClientVerifier(roots *x509.CertPool, issuer *x509.Certificate, trustDomain string, now func() time.Time) *clientVerifier {
	v := &clientVerifier{roots: roots, trustDomain: trustDomain, now: now}
	chains, err := issuer.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil || len(chains) == 0 || len(chains[0]) != 2 {
		// Not directly under a root of the bundle: no shortcut.
		return v
	}
	root := chains[0][1]
	v.issuer, v.own = issuer, x509.NewCertPool()
	v.own.AddCert(issuer)
	v.notBefore, v.notAfter = issuer.NotBefore, issuer.NotAfter
	if root.NotBefore.After(v.notBefore) {
		v.notBefore = root.NotBefore
	}
	if root.NotAfter.Before(v.notAfter) {
		v.notAfter = root.NotAfter
	}
	return v
}

var errNotValidNow = errors.New("server: client certificate is not valid now")

func (v *clientVerifier) verifyConnection(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return nil // enrollment, bundle, CRL, OCSP: no client certificate
	}
	now := v.now()
	if cs.DidResume {
		for _, c := range certs {
			if now.Before(c.NotBefore) || now.After(c.NotAfter) {
				return errNotValidNow
			}
		}
		return nil
	}
	leaf := certs[0]
	if v.shortcut(leaf, now) {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: v.own, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			return nil
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err == nil {
		return nil
	}
	for _, b := range v.bootstrap {
		if _, berr := leaf.Verify(x509.VerifyOptions{Roots: b, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); berr == nil {
			return nil
		}
	}
	return fmt.Errorf("server: client certificate: %w", err)
}

// shortcut reports whether leaf may be verified against the issuer alone.
func (v *clientVerifier) shortcut(leaf *x509.Certificate, now time.Time) bool {
	if v.issuer == nil || now.Before(v.notBefore) || now.After(v.notAfter) {
		return false
	}
	if !bytes.Equal(leaf.RawIssuer, v.issuer.RawSubject) || !bytes.Equal(leaf.AuthorityKeyId, v.issuer.SubjectKeyId) {
		return false // another issuer's leaf: the full verification decides
	}
	if len(leaf.URIs) != 1 || len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 || len(leaf.EmailAddresses) > 0 {
		return false
	}
	_, err := identity.FromCertificateIn(leaf, v.trustDomain)
	return err == nil
}

package cadir

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
)

// reasonSuperseded is RFC 5280's CRLReason superseded (4).
const reasonSuperseded = 4

// RefreshTrust brings the files of the directory in line with the CA state
// after a rotation: the trust bundles (DIR/bundle.pem and the admin's)
// carry the roots of the current bundle, and an admin certificate issued by
// another intermediate than the active one is replaced by one of the
// active intermediate (the old one revoked as superseded), so the operator
// keeps a working admin certificate whatever the rotation retired or
// revoked. Files are written atomically; the key stays 0600. It reports
// whether it issued a new admin certificate.
func (in *Installation) RefreshTrust(ctx context.Context) (bool, error) {
	cfg := in.Config
	h := in.Authority.Hierarchy()
	bundle := pemutil.EncodeCertificates(h.Roots...)
	for _, p := range []string{cfg.Path(cfg.CA.Bundle), cfg.Path(cfg.Admin.Bundle)} {
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, bundle) {
			continue
		}
		if err := atomicfile.Write(p, bundle, 0o644); err != nil {
			return false, fmt.Errorf("cadir: %w", err)
		}
	}
	certPEM, err := os.ReadFile(cfg.Path(cfg.Admin.Cert))
	if err != nil {
		return false, fmt.Errorf("cadir: admin credentials: %w", err)
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return false, fmt.Errorf("cadir: admin credentials: %w", err)
	}
	leaf := certs[0]
	// A key that does not match the certificate is what a process killed
	// between writing the two leaves: issue again.
	_, pairErr := tls.LoadX509KeyPair(cfg.Path(cfg.Admin.Cert), cfg.Path(cfg.Admin.Key))
	if pairErr == nil && bytes.Equal(leaf.AuthorityKeyId, h.Active.Certificate().SubjectKeyId) {
		return false, nil
	}
	id, err := identity.FromCertificateIn(leaf, cfg.TrustDomain)
	if err != nil {
		return false, fmt.Errorf("cadir: admin certificate: %w", err)
	}
	key, err := keytype.Generate(keytype.Default)
	if err != nil {
		return false, fmt.Errorf("cadir: admin key: %w", err)
	}
	iss, err := in.Authority.IssueDirect(ctx, ca.Request{PublicKey: key.Public(), Identity: id}, adminProfile(cfg), store.ObtainedInit, "system")
	if err != nil {
		return false, err
	}
	keyPEM, err := pemutil.EncodePrivateKey(key)
	if err != nil {
		return false, fmt.Errorf("cadir: %w", err)
	}
	// Key first: a crash between the two writes leaves the old pair
	// unusable but the new certificate recorded; running any ca command
	// again issues another.
	if err := atomicfile.Write(cfg.Path(cfg.Admin.Key), keyPEM, 0o600); err != nil {
		return false, fmt.Errorf("cadir: %w", err)
	}
	chain := pemutil.EncodeCertificates(append([]*x509.Certificate{iss.Cert}, iss.Chain...)...)
	if err := atomicfile.Write(cfg.Path(cfg.Admin.Cert), chain, 0o644); err != nil {
		return false, fmt.Errorf("cadir: %w", err)
	}
	if _, err := in.Authority.Revoke(ctx, store.RevokeRequest{Serial: ca.SerialHex(leaf.SerialNumber), Reason: reasonSuperseded, By: "system"}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return true, fmt.Errorf("cadir: revoke the replaced admin certificate: %w", err)
	}
	return true, nil
}

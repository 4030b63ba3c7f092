package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// Caller is an authenticated client.
type Caller struct {
	ID     identity.ID
	Serial string
}

// authenticate returns the caller if its certificate (already verified
// against the roots by the handshake) is of one of the allowed kinds (role
// path prefixes such as identity.AdminPrefix) and is not revoked.
func (s *Server) authenticate(r *http.Request, kinds ...string) (Caller, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Caller{}, apiError(http.StatusUnauthorized, wire.CodeUnauthenticated, "a client certificate is required", nil)
	}
	leaf := r.TLS.PeerCertificates[0]
	id, err := identity.FromCertificateIn(leaf, s.o.Authority.TrustDomain())
	if err != nil {
		return Caller{}, apiError(http.StatusForbidden, wire.CodeForbidden, "client certificate has no identity of this trust domain", err)
	}
	allowed := false
	for _, k := range kinds {
		allowed = allowed || id.Under(k)
	}
	if !allowed {
		return Caller{}, apiError(http.StatusForbidden, wire.CodeForbidden, fmt.Sprintf("identity %s may not use this endpoint", id), nil)
	}
	serial := ca.SerialHex(leaf.SerialNumber)
	rec, err := s.o.Store.GetCertificate(r.Context(), serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Caller{}, apiError(http.StatusForbidden, wire.CodeForbidden, "client certificate is not one this CA issued", nil)
	case err != nil:
		return Caller{}, err
	case rec.Fingerprint != ca.Fingerprint(leaf):
		// Same serial, other certificate: made with a stolen CA key.
		return Caller{}, apiError(http.StatusForbidden, wire.CodeForbidden, "client certificate is not one this CA issued", nil)
	case rec.Revocation != nil:
		return Caller{}, apiError(http.StatusForbidden, wire.CodeRevoked, fmt.Sprintf("client certificate %s is revoked", serial), nil)
	case s.o.Authority.Hierarchy().IssuerRevoked(rec.Issuer):
		return Caller{}, apiError(http.StatusForbidden, wire.CodeRevoked,
			fmt.Sprintf("client certificate %s was issued by a revoked intermediate; renew it (certgate agent does at its next check)", serial), nil)
	}
	return Caller{ID: id, Serial: serial}, nil
}

// auditAdmin records an admin read. Writes are audited by the store in the
// same transaction as the change.
func (s *Server) auditAdmin(ctx context.Context, c Caller, what string) error {
	_, err := s.o.Store.AppendAudit(ctx, audit.Entry{
		Time: s.o.Clock.Now(), Actor: c.ID.String(), Action: audit.ActionAdmin, Subject: what,
	})
	return err
}

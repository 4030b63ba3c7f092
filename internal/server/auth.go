package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// Caller is an authenticated client and the roles it holds.
type Caller struct {
	ID     identity.ID
	Serial string
	Roles  roles.Held
}

// The sets of roles the endpoints admit.
var (
	adminOnly   = []string{roles.Admin}
	gatewayOnly = []string{roles.Gateway}
	readers     = []string{roles.Admin, roles.Auditor}
	followers   = []string{roles.Admin, roles.Auditor, roles.Gateway}
	tokenMakers = []string{roles.Admin, roles.Issuer}
)

// authorize authenticates the caller and checks that it holds one of the
// roles (granted as data, see package roles) that may do what; the
// refusal says what it holds and what it would need. Issuer callers are
// admitted here and checked against their scope by the handler.
func (s *Server) authorize(r *http.Request, what string, allowed []string) (Caller, error) {
	c, err := s.authenticate(r)
	if err != nil {
		return Caller{}, err
	}
	grants, err := s.o.Store.RoleGrants(r.Context())
	if err != nil {
		return Caller{}, err
	}
	c.Roles = roles.For(grants, c.ID.String())
	if err := c.may(what, allowed); err != nil {
		return Caller{}, err
	}
	return c, nil
}

// may says whether the caller holds one of the roles allowed to do what;
// the refusal says what it holds and what it would need.
func (c Caller) may(what string, allowed []string) error {
	for _, a := range allowed {
		if (a == roles.Admin && c.Roles.Admin) || (a == roles.Auditor && c.Roles.Auditor) ||
			(a == roles.Gateway && c.Roles.Gateway) || (a == roles.Issuer && len(c.Roles.Scopes) > 0) {
			return nil
		}
	}
	held := "holds no role"
	if n := c.Roles.Names(); len(n) > 0 {
		held = "holds only " + strings.Join(n, ", ")
	}
	return apiError(http.StatusForbidden, wire.CodeForbidden,
		fmt.Sprintf("identity %s may not %s: it %s; that needs the role %s", c.ID, what, held, strings.Join(allowed, " or ")), nil)
}

// authenticate returns the caller if its certificate (already verified
// against the roots by the handshake) is one this CA issued and is not
// revoked. It says nothing about roles (authorize does).
func (s *Server) authenticate(r *http.Request) (Caller, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Caller{}, apiError(http.StatusUnauthorized, wire.CodeUnauthenticated, "a client certificate is required", nil)
	}
	leaf := r.TLS.PeerCertificates[0]
	id, err := identity.FromCertificateIn(leaf, s.o.Authority.TrustDomain())
	if err != nil {
		return Caller{}, apiError(http.StatusForbidden, wire.CodeForbidden, "client certificate has no identity of this trust domain", err)
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

package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// revoke answers POST /v1/revoke (admin): revokes one serial, every current
// certificate of an identity, or under an identity prefix, or with dry_run
// lists what it would revoke.
func (s *Server) revoke(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "revoke certificates", tokenMakers)
	if err != nil {
		return 0, nil, err
	}
	var req wire.RevokeRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	n := 0
	for _, v := range []string{req.Serial, req.Identity, req.IdentityPrefix} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, "give exactly one of serial, identity, identity_prefix", nil)
	}
	reason, err := ca.ParseReason(req.Reason)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadReason, err.Error(), nil)
	}
	sreq := store.RevokeRequest{Serial: strings.ToLower(req.Serial), Reason: reason, By: c.ID.String(), Now: s.o.Clock.Now()}
	if req.Identity != "" {
		id, err := identity.Parse(req.Identity)
		if err != nil {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
		}
		sreq.Identity = id.String()
	}
	if req.IdentityPrefix != "" {
		id, err := identity.Parse(req.IdentityPrefix)
		if err != nil {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
		}
		sreq.IdentityPrefix = id.String()
	}
	if !c.Roles.Admin {
		if err := s.inScope(r.Context(), c, sreq); err != nil {
			return 0, nil, err
		}
	}
	if req.DryRun {
		revs, err := s.wouldRevoke(r.Context(), sreq)
		if err != nil {
			return 0, nil, err
		}
		out := make([]wire.Revocation, len(revs))
		for i, rv := range revs {
			out[i] = revocationJSON(rv)
		}
		return http.StatusOK, wire.RevokeResponse{Revoked: out, DryRun: true}, nil
	}
	revs, err := s.o.Authority.Revoke(r.Context(), sreq)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no certificate with serial %s", sreq.Serial), nil)
	}
	if err != nil {
		return 0, nil, err
	}
	out := make([]wire.Revocation, len(revs))
	for i, rv := range revs {
		out[i] = revocationJSON(rv)
		s.o.Log.Info("certificate revoked", "serial", rv.Serial, "reason", ca.ReasonName(rv.Reason), "by", rv.RevokedBy)
	}
	return http.StatusOK, wire.RevokeResponse{Revoked: out}, nil
}

// wouldRevoke lists what req would revoke, by the same rules as the store:
// the one serial unless already revoked, or every current certificate of
// the identity or under the prefix.
func (s *Server) wouldRevoke(ctx context.Context, req store.RevokeRequest) ([]store.Revocation, error) {
	var certs []store.Certificate
	if req.Serial != "" {
		c, err := s.o.Store.GetCertificate(ctx, req.Serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no certificate with serial %s", req.Serial), nil)
		}
		if err != nil {
			return nil, err
		}
		if c.Revocation == nil {
			certs = append(certs, c)
		}
	} else {
		var err error
		certs, err = s.o.Store.ListCertificates(ctx, store.CertFilter{Identity: req.Identity, IdentityPrefix: req.IdentityPrefix, Status: "valid", Now: req.Now})
		if err != nil {
			return nil, err
		}
	}
	out := make([]store.Revocation, len(certs))
	for i, c := range certs {
		out[i] = store.Revocation{Serial: c.Serial, Reason: req.Reason, RevokedAt: req.Now, RevokedBy: req.By}
	}
	return out, nil
}

// inScope refuses an issuer's revocation of anything outside its scope: a
// serial of another identity, an identity, or a prefix not wholly inside.
func (s *Server) inScope(ctx context.Context, c Caller, req store.RevokeRequest) error {
	target, what := req.Identity, "identity "+req.Identity
	switch {
	case req.Serial != "":
		cert, err := s.o.Store.GetCertificate(ctx, req.Serial)
		if errors.Is(err, store.ErrNotFound) {
			return apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no certificate with serial %s", req.Serial), nil)
		}
		if err != nil {
			return err
		}
		target, what = cert.Identity, fmt.Sprintf("certificate %s (of %s)", req.Serial, cert.Identity)
	case req.IdentityPrefix != "":
		target, what = req.IdentityPrefix+"/*", "identities under "+req.IdentityPrefix
	}
	if _, ok := c.Roles.MayIssueFor(target); !ok {
		return apiError(http.StatusForbidden, wire.CodeForbidden, fmt.Sprintf("identity %s may revoke only inside its issuer scope %s; %s is outside it",
			c.ID, strings.Join(c.Roles.Scopes, ", "), what), nil)
	}
	return nil
}

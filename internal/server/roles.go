package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// listRoles answers GET /v1/roles (admin, auditor): every grant.
func (s *Server) listRoles(r *http.Request) (int, any, error) {
	if _, err := s.authorize(r, "read role grants", readers); err != nil {
		return 0, nil, err
	}
	grants, err := s.o.Store.RoleGrants(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]wire.RoleGrant, len(grants))
	for i, g := range grants {
		out[i] = grantJSON(g)
	}
	return http.StatusOK, wire.RoleList{Grants: out}, nil
}

func grantJSON(g roles.Grant) wire.RoleGrant {
	return wire.RoleGrant{Role: g.Role, Holder: g.Holder, Scope: g.Scope, GrantedBy: g.GrantedBy, GrantedAt: g.GrantedAt.UTC()}
}

// grantRole answers POST /v1/roles (admin): grants a role, audited.
func (s *Server) grantRole(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "grant roles", adminOnly)
	if err != nil {
		return 0, nil, err
	}
	var req wire.RoleChange
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	g := roles.Grant{Role: req.Role, Holder: req.Holder, Scope: req.Scope, GrantedBy: c.ID.String(), GrantedAt: s.o.Clock.Now()}
	if err := g.Validate(s.o.Authority.TrustDomain()); err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRole, err.Error(), nil)
	}
	err = s.o.Store.GrantRole(r.Context(), g)
	if errors.Is(err, store.ErrDuplicateGrant) {
		return 0, nil, apiError(http.StatusConflict, wire.CodeConflict, fmt.Sprintf("%s already holds role %s%s", g.Holder, g.Role, scopeText(g.Scope)), nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.o.Log.Info("role granted", "role", g.Role, "holder", g.Holder, "scope", g.Scope, "by", g.GrantedBy)
	return http.StatusCreated, grantJSON(g), nil
}

// revokeRole answers POST /v1/roles/revoke (admin): removes a grant, audited.
func (s *Server) revokeRole(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "revoke roles", adminOnly)
	if err != nil {
		return 0, nil, err
	}
	var req wire.RoleChange
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	g := roles.Grant{Role: req.Role, Holder: req.Holder, Scope: req.Scope}
	err = s.o.Store.RevokeRole(r.Context(), g, c.ID.String(), s.o.Clock.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("%s holds no grant of role %s%s", g.Holder, g.Role, scopeText(g.Scope)), nil)
	case errors.Is(err, store.ErrLastAdmin):
		return 0, nil, apiError(http.StatusConflict, wire.CodeConflict, fmt.Sprintf("revoking admin from %s: %v", g.Holder, store.ErrLastAdmin), nil)
	case err != nil:
		return 0, nil, err
	}
	s.o.Log.Info("role revoked", "role", g.Role, "holder", g.Holder, "scope", g.Scope, "by", c.ID.String())
	return http.StatusOK, grantJSON(g), nil
}

func scopeText(scope string) string {
	if scope == "" {
		return ""
	}
	return " for " + scope
}

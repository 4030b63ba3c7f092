package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/wire"
)

// createToken answers POST /v1/tokens (admin): a one-time enrollment token
// for an identity of the trust domain.
func (s *Server) createToken(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "create enrollment tokens", tokenMakers)
	if err != nil {
		return 0, nil, err
	}
	var req wire.CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	resp, err := s.mintToken(r.Context(), c, req)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, resp, nil
}

// mintToken mints a token as c asked, under the role rules: an issuer only
// inside its scope and for identities without a role, a privileged token
// only when its roles are named (and then short-lived).
func (s *Server) mintToken(ctx context.Context, c Caller, req wire.CreateTokenRequest) (wire.CreateTokenResponse, error) {
	fail := func(err error) (wire.CreateTokenResponse, error) { return wire.CreateTokenResponse{}, err }
	id, err := identity.Parse(req.Identity)
	if err != nil {
		return fail(apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil))
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return fail(apiError(http.StatusBadRequest, wire.CodeBadTTL, fmt.Sprintf("ttl %q is not a positive duration such as 15m", req.TTL), nil))
		}
	}
	// An issuer mints only inside its scope, and only for identities that
	// hold no role: a team provisions its own clients, not privileges.
	var scope string
	if !c.Roles.Admin {
		sc, ok := c.Roles.MayIssueFor(id.String())
		if !ok {
			return fail(apiError(http.StatusForbidden, wire.CodeForbidden, fmt.Sprintf("identity %s may mint tokens only inside its issuer scope %s; %s is outside it",
				c.ID, strings.Join(c.Roles.Scopes, ", "), id), nil))
		}
		scope = sc
	}
	grants, err := s.o.Store.RoleGrants(ctx)
	if err != nil {
		return fail(err)
	}
	held := roles.For(grants, id.String())
	var privileged []string
	if held.Any() {
		privileged = held.Names()
		if !c.Roles.Admin {
			return fail(apiError(http.StatusForbidden, wire.CodeForbidden, fmt.Sprintf("identity %s may not mint a token for %s: it holds %s, and only an admin mints tokens for identities that hold a role",
				c.ID, id, strings.Join(privileged, ", ")), nil))
		}
		want := roleList(held)
		if req.Role == "" {
			return fail(apiError(http.StatusBadRequest, wire.CodeRoleRequired, fmt.Sprintf("%s holds the role %s: whoever redeems this token gets what that role allows; if that is meant, say so with --role %s (the token then lives at most %s)",
				id, strings.Join(privileged, ", "), want, s.o.Authority.MaxPrivilegedTokenTTL()), nil))
		}
		if !sameRoles(req.Role, want) {
			return fail(apiError(http.StatusBadRequest, wire.CodeBadRole, fmt.Sprintf("--role %s does not name what %s holds: %s (say --role %s)", req.Role, id, strings.Join(privileged, ", "), want), nil))
		}
	} else if req.Role != "" {
		return fail(apiError(http.StatusBadRequest, wire.CodeBadRole, fmt.Sprintf("--role %s: %s holds no role; grant it first (certgate role grant), or leave --role out for a plain client", req.Role, id), nil))
	}
	t, err := s.o.Authority.MintToken(ctx, ca.TokenRequest{Actor: c.ID.String(), Identity: id, TTL: ttl, Roles: privileged, Scope: scope})
	switch {
	case errors.Is(err, ca.ErrIdentity):
		return fail(apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil))
	case err != nil && strings.Contains(err.Error(), "TTL"):
		return fail(apiError(http.StatusBadRequest, wire.CodeBadTTL, err.Error(), nil))
	case err != nil:
		return fail(err)
	}
	s.o.Log.Info("token created", "token_id", t.ID, "identity", id.String(), "by", c.ID.String(), "expires_at", t.ExpiresAt, "privileged_roles", privileged, "issuer_scope", scope)
	return wire.CreateTokenResponse{Token: t.String(), ID: t.ID, Identity: id.String(), ExpiresAt: t.ExpiresAt}, nil
}

// roleList is the --role value that names what h holds: role names,
// comma-separated, issuer once whatever its scopes.
func roleList(h roles.Held) string {
	var out []string
	for _, n := range h.Names() {
		n, _, _ = strings.Cut(n, "(")
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// sameRoles compares two comma-separated role lists as sets.
func sameRoles(a, b string) bool {
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(split(a), split(b))
}

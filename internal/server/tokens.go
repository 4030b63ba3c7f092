package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/wire"
)

// createToken answers POST /v1/tokens (admin): a one-time enrollment token
// for an identity of the trust domain.
func (s *Server) createToken(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, identity.AdminPrefix)
	if err != nil {
		return 0, nil, err
	}
	var req wire.CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id, err := identity.Parse(req.Identity)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadTTL, fmt.Sprintf("ttl %q is not a positive duration such as 15m", req.TTL), nil)
		}
	}
	t, err := s.o.Authority.CreateToken(r.Context(), c.ID.String(), id, ttl)
	switch {
	case errors.Is(err, ca.ErrIdentity):
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
	case err != nil && strings.Contains(err.Error(), "TTL"):
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadTTL, err.Error(), nil)
	case err != nil:
		return 0, nil, err
	}
	s.o.Log.Info("token created", "token_id", t.ID, "identity", id.String(), "by", c.ID.String(), "expires_at", t.ExpiresAt)
	return http.StatusCreated, wire.CreateTokenResponse{Token: t.String(), ID: t.ID, Identity: id.String(), ExpiresAt: t.ExpiresAt}, nil
}

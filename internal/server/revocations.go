package server

import (
	"context"
	"net/http"

	"github.com/certgate/certgate/internal/server/feedserver"
	"github.com/certgate/certgate/internal/wire"
)

// revocations answers GET /v1/revocations (gateway or admin): every
// revoked, unexpired certificate as of a feed position, for followers that
// pull instead of following the feed.
func (s *Server) revocations(r *http.Request) (int, any, error) {
	if _, err := s.authorize(r, "read the revocation list", followers); err != nil {
		return 0, nil, err
	}
	snap, err := s.o.Store.RevocationSnapshot(r.Context(), s.o.Clock.Now())
	if err != nil {
		return 0, nil, err
	}
	out := make([]wire.Revoked, len(snap.Revoked))
	for i, e := range snap.Revoked {
		out[i] = wire.Revoked{Serial: e.Serial, Identity: e.Identity, Reason: e.Reason, NotAfter: e.NotAfter.UTC()}
	}
	st, err := caState(r.Context(), s.o.Store, s.o.Authority, snap.Position)
	if err != nil {
		return 0, nil, err
	}
	resp := wire.Revocations{Position: snap.Position, Revoked: out}
	if len(st.RevokedIssuers) > 0 {
		resp.RevokedIssuers = st.RevokedIssuers
	}
	return http.StatusOK, resp, nil
}

// feedHandler streams the change feed to a gateway (or an admin watching
// by hand with curl -N).
func (s *Server) feedHandler(w http.ResponseWriter, r *http.Request) {
	c, err := s.authorize(r, "follow the change feed", followers)
	if err != nil {
		writeError(w, r, s.o.Log, classify(err))
		return
	}
	after, err := feedserver.ParseAfter(r)
	if err != nil {
		writeError(w, r, s.o.Log, apiError(http.StatusBadRequest, wire.CodeBadRequest, err.Error(), nil))
		return
	}
	s.o.Log.Info("feed follower connected", "identity", c.ID.String(), "serial", c.Serial, "after", after)
	defer s.gateways.streamOpened(c.ID.String(), s.o.Clock.Now(), after)()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	err = s.feed.Stream(ctx, w, after)
	s.o.Log.Info("feed follower gone", "identity", c.ID.String(), "serial", c.Serial, "err", err)
}

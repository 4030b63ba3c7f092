package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/legacykey"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// LegacyKeyStore is what the legacy key endpoints use of the store.
type LegacyKeyStore interface {
	LegacyKeySalt(ctx context.Context, now time.Time) ([]byte, error)
	ImportLegacyKeys(ctx context.Context, keys []store.LegacyKey) error
	RevokeLegacyKey(ctx context.Context, name, reason, by string, now time.Time) error
	ExtendLegacyKey(ctx context.Context, name string, sunset time.Time, by string, now time.Time) error
	MarkLegacyKeyMigration(ctx context.Context, name, tokenID string, grace time.Duration, by string, now time.Time) error
	RevokeMigratedLegacyKeys(ctx context.Context, now time.Time) ([]string, error)
	LegacyKeys(ctx context.Context) ([]store.LegacyKey, error)
}

func (s *Server) legacyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathLegacyKeys, s.handle(s.listLegacyKeys))
	mux.HandleFunc("POST "+wire.PathLegacyKeys, s.handleLimit(s.importLegacyKeys, 4<<20))
	mux.HandleFunc("GET "+wire.PathLegacyKeySalt, s.handle(s.legacyKeySalt))
	mux.HandleFunc("POST "+wire.PathLegacyKeys+"/{name}/revoke", s.handle(s.revokeLegacyKey))
	mux.HandleFunc("POST "+wire.PathLegacyKeys+"/{name}/extend", s.handle(s.extendLegacyKey))
	mux.HandleFunc("POST "+wire.PathLegacyKeys+"/{name}/migrate", s.handle(s.migrateLegacyKey))
}

// legacyKeySalt answers GET /v1/legacy-keys/salt (admin).
func (s *Server) legacyKeySalt(r *http.Request) (int, any, error) {
	if _, err := s.authorize(r, "import legacy keys", adminOnly); err != nil {
		return 0, nil, err
	}
	salt, err := s.o.Store.LegacyKeySalt(r.Context(), s.o.Clock.Now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.LegacyKeySalt{Salt: salt}, nil
}

func lineOf(k wire.LegacyKeyHash) string {
	if k.Line > 0 {
		return fmt.Sprintf("line %d: ", k.Line)
	}
	return ""
}

// importLegacyKeys answers POST /v1/legacy-keys (admin): hashes of keys,
// all imported or none, each audited.
func (s *Server) importLegacyKeys(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "import legacy keys", adminOnly)
	if err != nil {
		return 0, nil, err
	}
	var req wire.LegacyKeyImport
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	now := s.o.Clock.Now()
	bad := func(msg string) (int, any, error) {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, "legacy keys: nothing imported: "+msg, nil)
	}
	switch {
	case len(req.Keys) == 0:
		return bad("no keys")
	case len(req.Keys) > wire.MaxLegacyKeysImport:
		return bad(fmt.Sprintf("%d keys, more than %d in one import", len(req.Keys), wire.MaxLegacyKeysImport))
	case !req.Sunset.After(now):
		return bad(fmt.Sprintf("sunset %s is not in the future", req.Sunset.UTC().Format(time.RFC3339)))
	}
	td := s.o.Authority.TrustDomain()
	keys := make([]store.LegacyKey, 0, len(req.Keys))
	for _, k := range req.Keys {
		if err := legacykey.CheckName(k.Name); err != nil {
			return bad(lineOf(k) + err.Error())
		}
		h, err := hex.DecodeString(k.Hash)
		if err != nil || len(h) != 32 {
			return bad(lineOf(k) + fmt.Sprintf("hash of %q is not 64 hex digits", k.Name))
		}
		keys = append(keys, store.LegacyKey{Name: k.Name, Identity: legacykey.Identity(td, k.Name), Hash: h, CreatedBy: c.ID.String(), CreatedAt: now, Sunset: req.Sunset.UTC()})
	}
	err = s.o.Store.ImportLegacyKeys(r.Context(), keys)
	if errors.Is(err, store.ErrLegacyKeyExists) {
		msg := err.Error()
		for _, k := range req.Keys {
			if strings.Contains(msg, fmt.Sprintf("key %q:", k.Name)) {
				return 0, nil, apiError(http.StatusConflict, wire.CodeConflict, fmt.Sprintf("legacy keys: nothing imported: %skey %q: a key of that name, or that key under another name, is stored already", lineOf(k), k.Name), nil)
			}
		}
		return 0, nil, apiError(http.StatusConflict, wire.CodeConflict, "legacy keys: nothing imported: a key is stored already", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.o.Log.Info("legacy keys imported", "count", len(keys), "by", c.ID.String(), "sunset", req.Sunset.UTC())
	all, err := s.o.Store.LegacyKeys(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := wire.LegacyKeyList{Keys: []wire.LegacyKey{}}
	for _, k := range all {
		if slices.ContainsFunc(keys, func(x store.LegacyKey) bool { return x.Name == k.Name }) {
			out.Keys = append(out.Keys, legacyKeyJSON(k))
		}
	}
	return http.StatusCreated, out, nil
}

// LegacyState is the migration state of a key's client (wire.LegacyState*).
func LegacyState(k store.LegacyKey) string {
	u := k.Usage
	certSeen := !u.CertLastSeen.IsZero()
	keySeen := !u.LastSeen.IsZero()
	switch {
	case certSeen && (!k.RevokedAt.IsZero() || !keySeen || (!k.CertFirstSeen.IsZero() && u.LastSeen.Before(k.CertFirstSeen))):
		return wire.LegacyStateCertOnly
	case certSeen:
		return wire.LegacyStateBoth
	case keySeen:
		return wire.LegacyStateKeyOnly
	}
	return wire.LegacyStateUnused
}

func legacyKeyJSON(k store.LegacyKey) wire.LegacyKey {
	out := wire.LegacyKey{
		Name: k.Name, Identity: k.Identity, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt.UTC(), Sunset: k.Sunset.UTC(),
		RevokedAt: k.RevokedAt, RevokedBy: k.RevokedBy, RevokeReason: k.RevokeReason, MigratedAt: k.MigratedAt, CertFirstSeen: k.CertFirstSeen,
		Requests: k.Usage.Requests, LastSeen: k.Usage.LastSeen, Routes: k.Usage.Routes, Sources: k.Usage.Sources,
		CertRequests: k.Usage.CertRequests, CertLastSeen: k.Usage.CertLastSeen, State: LegacyState(k),
	}
	if k.AutoRevokeGrace > 0 {
		out.AutoRevokeAfter = k.AutoRevokeGrace.String()
	}
	return out
}

// listLegacyKeys answers GET /v1/legacy-keys (admin, auditor), with
// ?stale=WINDOW keeping the keys not revoked and not used for that long
// (never used: imported that long ago).
func (s *Server) listLegacyKeys(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "list legacy keys", readers)
	if err != nil {
		return 0, nil, err
	}
	var stale time.Duration
	if v := r.URL.Query().Get("stale"); v != "" {
		if stale, err = ParseWindow(v); err != nil {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, "stale: "+err.Error(), nil)
		}
	}
	keys, err := s.o.Store.LegacyKeys(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if err := s.auditAdmin(r.Context(), c, "list legacy keys"); err != nil {
		return 0, nil, err
	}
	now := s.o.Clock.Now()
	out := wire.LegacyKeyList{Keys: []wire.LegacyKey{}}
	for _, k := range keys {
		if stale > 0 {
			last := k.Usage.LastSeen
			if last.IsZero() {
				last = k.CreatedAt
			}
			if !k.RevokedAt.IsZero() || now.Sub(last) < stale {
				continue
			}
		}
		out.Keys = append(out.Keys, legacyKeyJSON(k))
	}
	return http.StatusOK, out, nil
}

// legacyChange maps the store's refusals of a change to a key.
func legacyChange(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no legacy key named %q", name), nil)
	case errors.Is(err, store.ErrLegacyKeyRevoked):
		return apiError(http.StatusConflict, wire.CodeConflict, fmt.Sprintf("legacy key %q is revoked; it cannot be changed", name), nil)
	}
	return err
}

func (s *Server) legacyKey(ctx context.Context, name string) (store.LegacyKey, error) {
	keys, err := s.o.Store.LegacyKeys(ctx)
	if err != nil {
		return store.LegacyKey{}, err
	}
	for _, k := range keys {
		if k.Name == name {
			return k, nil
		}
	}
	return store.LegacyKey{}, legacyChange(name, store.ErrNotFound)
}

// revokeLegacyKey answers POST /v1/legacy-keys/NAME/revoke (admin).
func (s *Server) revokeLegacyKey(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "revoke legacy keys", adminOnly)
	if err != nil {
		return 0, nil, err
	}
	var req wire.LegacyKeyRevoke
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if err := s.o.Store.RevokeLegacyKey(r.Context(), name, req.Reason, c.ID.String(), s.o.Clock.Now()); err != nil {
		return 0, nil, legacyChange(name, err)
	}
	s.o.Log.Info("legacy key revoked", "name", name, "by", c.ID.String())
	k, err := s.legacyKey(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, legacyKeyJSON(k), nil
}

// extendLegacyKey answers POST /v1/legacy-keys/NAME/extend (admin).
func (s *Server) extendLegacyKey(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "extend legacy keys", adminOnly)
	if err != nil {
		return 0, nil, err
	}
	var req wire.LegacyKeyExtend
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	now := s.o.Clock.Now()
	if !req.Sunset.After(now) {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("sunset %s is not in the future", req.Sunset.UTC().Format(time.RFC3339)), nil)
	}
	name := r.PathValue("name")
	if err := s.o.Store.ExtendLegacyKey(r.Context(), name, req.Sunset.UTC(), c.ID.String(), now); err != nil {
		return 0, nil, legacyChange(name, err)
	}
	s.o.Log.Info("legacy key extended", "name", name, "sunset", req.Sunset.UTC(), "by", c.ID.String())
	k, err := s.legacyKey(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, legacyKeyJSON(k), nil
}

// migrateLegacyKey answers POST /v1/legacy-keys/NAME/migrate (admin, or an
// issuer whose scope covers the key's identity): an enrollment token for
// the identity the key maps to, so route rules need no change, and
// optionally the key's automatic revocation a grace after a certificate
// of that identity was first used.
func (s *Server) migrateLegacyKey(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "migrate legacy keys", tokenMakers)
	if err != nil {
		return 0, nil, err
	}
	var req wire.LegacyKeyMigrate
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	var grace time.Duration
	if req.AutoRevokeAfter != "" {
		if grace, err = time.ParseDuration(req.AutoRevokeAfter); err != nil || grace <= 0 {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("auto_revoke_after %q is not a positive duration such as 24h", req.AutoRevokeAfter), nil)
		}
	}
	name := r.PathValue("name")
	k, err := s.legacyKey(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	if !k.RevokedAt.IsZero() {
		return 0, nil, legacyChange(name, store.ErrLegacyKeyRevoked)
	}
	tok, err := s.mintToken(r.Context(), c, wire.CreateTokenRequest{Identity: k.Identity, TTL: req.TTL})
	if err != nil {
		return 0, nil, err
	}
	if err := s.o.Store.MarkLegacyKeyMigration(r.Context(), name, tok.ID, grace, c.ID.String(), s.o.Clock.Now()); err != nil {
		return 0, nil, legacyChange(name, err)
	}
	if k, err = s.legacyKey(r.Context(), name); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, wire.LegacyKeyMigrateResponse{Key: legacyKeyJSON(k), Token: tok}, nil
}

// uiLegacyKeys is the console's "still on keys" page: every key with its
// traffic and its client's migration state, sorted by traffic (the
// default), last seen or name.
func (s *Server) uiLegacyKeys(w http.ResponseWriter, r *http.Request, c Caller) error {
	sortBy := r.URL.Query().Get("sort")
	if sortBy == "" {
		sortBy = "traffic"
	}
	if !slices.Contains([]string{"traffic", "last-seen", "name"}, sortBy) {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("sort %q is not one of traffic, last-seen, name", sortBy), nil)
	}
	keys, err := s.o.Store.LegacyKeys(r.Context())
	if err != nil {
		return err
	}
	if err := s.auditAdmin(r.Context(), c, "console: legacy keys"); err != nil {
		return err
	}
	out := make([]wire.LegacyKey, len(keys))
	count := map[string]int{}
	for i, k := range keys {
		out[i] = legacyKeyJSON(k)
		count[out[i].State]++
	}
	slices.SortStableFunc(out, func(a, b wire.LegacyKey) int {
		switch sortBy {
		case "traffic":
			return cmpDesc(a.Requests, b.Requests)
		case "last-seen":
			return b.LastSeen.Compare(a.LastSeen)
		}
		return strings.Compare(a.Name, b.Name)
	})
	s.render(w, http.StatusOK, "legacykeys.html", c, map[string]any{
		"Title": "Still on keys", "Keys": out, "Sort": sortBy,
		"KeyOnly": count[wire.LegacyStateKeyOnly], "Both": count[wire.LegacyStateBoth], "CertOnly": count[wire.LegacyStateCertOnly], "Unused": count[wire.LegacyStateUnused],
	})
	return nil
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// legacyKeySet is the feed's view of the keys: the salt and every key not
// revoked. With no key it is empty and reads no salt (nor makes one).
func legacyKeySet(ctx context.Context, st LegacyKeyStore, now time.Time) (wire.LegacyKeySet, error) {
	keys, err := st.LegacyKeys(ctx)
	if err != nil {
		return wire.LegacyKeySet{}, err
	}
	out := wire.LegacyKeySet{Keys: []wire.LegacyKeyRef{}}
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			out.Keys = append(out.Keys, wire.LegacyKeyRef{Hash: hex.EncodeToString(k.Hash), Name: k.Name, Identity: k.Identity, Sunset: k.Sunset.UTC(), Since: k.CreatedAt.UTC()})
		}
	}
	if len(keys) > 0 {
		if out.Salt, err = st.LegacyKeySalt(ctx, now); err != nil {
			return wire.LegacyKeySet{}, err
		}
	}
	return out, nil
}

// legacyAutoRevoke revokes, every interval until ctx is done, the keys
// whose migration grace has passed (store.RevokeMigratedLegacyKeys).
func (s *Server) legacyAutoRevoke(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		names, err := s.o.Store.RevokeMigratedLegacyKeys(ctx, s.o.Clock.Now())
		if err != nil {
			if ctx.Err() == nil {
				s.o.Log.Warn("legacy keys: automatic revocation after migration failed; retrying", "err", err)
			}
			continue
		}
		for _, n := range names {
			s.o.Log.Info("legacy key revoked: its client uses a certificate now and the grace has passed", "name", n)
		}
	}
}

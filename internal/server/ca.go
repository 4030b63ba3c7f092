package server

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// caState is the CA's public state from the store's rows, as of position
// pos (0: the store's last).
func caState(ctx context.Context, st Store, auth *ca.Service, pos int64) (wire.CA, error) {
	rows, err := caRows(ctx, st, auth)
	if err != nil {
		return wire.CA{}, err
	}
	if pos <= 0 {
		if pos, err = st.LastPosition(ctx); err != nil {
			return wire.CA{}, err
		}
	}
	return ca.PublicState(auth.TrustDomain(), rows, pos)
}

// caRows are the store's CA certificates, or those of the authority's
// hierarchy when the store records none (a CA built in memory, as tests
// and tools do).
func caRows(ctx context.Context, st Store, auth *ca.Service) ([]store.CACert, error) {
	rows, err := st.ListCAs(ctx)
	if err != nil || len(rows) > 0 {
		return rows, err
	}
	return auth.Hierarchy().CAs, nil
}

// caInfo answers GET /v1/ca: the roots, the published intermediates and the
// revoked CA keys. Public, like the bundle: agents check it for a revoked
// issuer, verifiers for the intermediates of leaf-only clients.
func (s *Server) caInfo(r *http.Request) (int, any, error) {
	st, err := caState(r.Context(), s.o.Store, s.o.Authority, 0)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

// keyIDPattern is a CA key ID in a URL: lowercase hex of a subject key
// identifier (20 bytes for certgate's, up to 64 accepted).
var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{2,128}$`)

// caCert serves GET /ca/KEYID.crt: the DER certificate of a CA key that is
// or was in service (the authority information access of everything it
// signed names it). For a root rotation's new root the self-signed
// certificate is served, not a cross-certificate.
func (s *Server) caCert(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	keyID, ok := strings.CutSuffix(name, ".crt")
	if !ok || !keyIDPattern.MatchString(keyID) {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "no such CA certificate (want /ca/KEYID.crt, KEYID in lowercase hex)", nil))
		return
	}
	rows, err := caRows(r.Context(), s.o.Store, s.o.Authority)
	if err != nil {
		writeError(w, r, s.o.Log, classify(err))
		return
	}
	for _, c := range rows {
		if c.KeyID == keyID && c.Kind != store.CAKindCross {
			w.Header().Set("Content-Type", "application/pkix-cert")
			w.Header().Set("Cache-Control", "public, max-age=86400")
			_, _ = w.Write(c.DER)
			return
		}
	}
	writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "no CA certificate with key ID "+keyID, nil))
}

// crlOf serves GET /crl/KEYID: the CRL of that CA key, as the distribution
// point of what it signed names it.
func (s *Server) crlOf(w http.ResponseWriter, r *http.Request) {
	keyID := r.PathValue("keyid")
	if !keyIDPattern.MatchString(keyID) {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "no such CRL (want /crl/KEYID, KEYID in lowercase hex)", nil))
		return
	}
	c, err := s.status.CRLFor(r.Context(), keyID)
	if errors.Is(err, certstatus.ErrNoIssuer) {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound,
			"no CRL for CA key "+keyID+": not a key of this CA, or one that publishes none (retired, revoked, or not signing yet)", nil))
		return
	}
	s.serveCRL(w, r, c, err)
}

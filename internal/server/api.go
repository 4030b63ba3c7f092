package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/token"
	"github.com/certgate/certgate/internal/wire"
)

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathTokens, s.handle(s.createToken))
	mux.HandleFunc("POST "+wire.PathEnroll, s.handle(s.enroll))
	mux.HandleFunc("POST "+wire.PathRenew, s.handle(s.renew))
	mux.HandleFunc("GET "+wire.PathCertificates, s.handle(s.listCertificates))
	mux.HandleFunc("GET "+wire.PathCertificates+"/{serial}", s.handle(s.showCertificate))
	mux.HandleFunc("POST "+wire.PathRevoke, s.handle(s.revoke))
	mux.HandleFunc("GET "+wire.PathAudit, s.handle(s.auditRecords))
	mux.HandleFunc("GET "+wire.PathRevocations, s.handle(s.revocations))
	mux.HandleFunc("GET "+wire.PathFeed, s.feedHandler)
	mux.HandleFunc("GET "+wire.PathBundle, s.bundle)
	s.statusRoutes(mux)
	mux.HandleFunc("GET "+wire.PathHealth, s.health)
	mux.HandleFunc("/", s.handle(func(*http.Request) (int, any, error) {
		return 0, nil, apiError(http.StatusNotFound, wire.CodeNotFound, "no such endpoint", nil)
	}))
	return mux
}

type handlerFunc func(r *http.Request) (status int, body any, err error)

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
		status, body, err := h(r)
		if err != nil {
			writeError(w, r, s.o.Log, classify(err))
			return
		}
		writeJSON(w, status, body)
	}
}

// classify maps domain errors to API errors. Anything unrecognised is a 500
// whose cause is logged but not shown.
func classify(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, wire.CodeUnavailable, "the store is unavailable; nothing was issued or changed, try again", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apiError(http.StatusServiceUnavailable, wire.CodeUnavailable, "request cancelled or timed out; nothing was changed", err)
	}
	return err
}

// decode reads exactly one JSON object with no unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), nil)
		}
		if errors.Is(err, io.EOF) {
			return apiError(http.StatusBadRequest, wire.CodeBadRequest, "request body is empty", nil)
		}
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, "invalid JSON: "+err.Error(), nil)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), nil)
		}
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, "invalid JSON: data after the object", nil)
	}
	return nil
}

// Caller is an authenticated client.
type Caller struct {
	ID     identity.ID
	Serial string
}

// authenticate returns the caller if its certificate (already verified
// against the roots by the handshake) is of one of the allowed kinds (path
// prefixes such as "/admin/") and is not revoked.
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
		allowed = allowed || strings.HasPrefix(id.Path(), k)
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
	case rec.Revocation != nil:
		return Caller{}, apiError(http.StatusForbidden, wire.CodeRevoked, fmt.Sprintf("client certificate %s is revoked", serial), nil)
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

func (s *Server) createToken(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
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

func (s *Server) enroll(r *http.Request) (int, any, error) {
	var req wire.EnrollRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	tok, err := token.Parse(req.Token)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadToken, err.Error(), nil)
	}
	if tok.RootFingerprint != s.o.Authority.RootFingerprint() {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadToken, "token was made for another CA (root fingerprint differs)", nil)
	}
	iss, err := s.o.Authority.Enroll(r.Context(), tok, []byte(req.CSR))
	if err != nil {
		return 0, nil, enrollError(err)
	}
	s.o.Log.Info("certificate issued", "serial", iss.Record.Serial, "identity", iss.Record.Identity,
		"token_id", tok.ID, "not_after", iss.Record.NotAfter)
	return http.StatusCreated, issuedResponse(iss), nil
}

// renew issues a successor certificate to a client authenticated by its
// current certificate (verified against the roots by the handshake).
func (s *Server) renew(r *http.Request) (int, any, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return 0, nil, apiError(http.StatusUnauthorized, wire.CodeUnauthenticated, "renewal needs the current client certificate", nil)
	}
	var req wire.RenewRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	current := r.TLS.PeerCertificates[0]
	iss, err := s.o.Authority.Renew(r.Context(), current, []byte(req.CSR))
	if err != nil {
		return 0, nil, renewError(err)
	}
	s.o.Log.Info("certificate renewed", "serial", iss.Record.Serial, "renewed_from", iss.Record.RenewedFrom,
		"identity", iss.Record.Identity, "not_after", iss.Record.NotAfter)
	return http.StatusCreated, issuedResponse(iss), nil
}

func renewError(err error) error {
	switch {
	case errors.Is(err, ca.ErrRenewRevoked):
		return apiError(http.StatusForbidden, wire.CodeRevoked, "certificate is revoked; enroll again with a new token", nil)
	case errors.Is(err, ca.ErrRenewExpired):
		return apiError(http.StatusForbidden, wire.CodeExpired, "certificate has expired; enroll again with a new token", nil)
	case errors.Is(err, ca.ErrRenewUnknown):
		return apiError(http.StatusForbidden, wire.CodeUnknownCert, "certificate was not issued by this CA", nil)
	case errors.Is(err, ca.ErrSameKey):
		return apiError(http.StatusBadRequest, wire.CodeSameKey, "renewal must use a new key", nil)
	}
	return enrollError(err)
}

// issuedResponse is the answer to an enrollment or a renewal.
func issuedResponse(iss ca.Issued) wire.EnrollResponse {
	return wire.EnrollResponse{
		Serial:      iss.Record.Serial,
		Identity:    iss.Record.Identity,
		NotAfter:    iss.Cert.NotAfter,
		Certificate: string(pemutil.EncodeCertificates(iss.Cert)),
		Chain:       string(pemutil.EncodeCertificates(iss.Chain...)),
		Bundle:      string(pemutil.EncodeCertificates(iss.Roots...)),
	}
}

func enrollError(err error) error {
	switch {
	case errors.Is(err, ca.ErrTokenInvalid):
		return apiError(http.StatusForbidden, wire.CodeTokenInvalid, "token is not valid", nil)
	case errors.Is(err, ca.ErrTokenUsed):
		return apiError(http.StatusForbidden, wire.CodeTokenUsed, "token was already used", nil)
	case errors.Is(err, ca.ErrTokenExpired):
		return apiError(http.StatusForbidden, wire.CodeTokenExpired, "token has expired", nil)
	case errors.Is(err, csr.ErrTooLarge):
		return apiError(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, err.Error(), nil)
	case errors.Is(err, csr.ErrMalformed), errors.Is(err, csr.ErrSignature), errors.Is(err, csr.ErrKeyType),
		errors.Is(err, csr.ErrIdentity), errors.Is(err, csr.ErrExtraSAN), errors.Is(err, ca.ErrIdentity), errors.Is(err, ca.ErrProfile):
		return apiError(http.StatusBadRequest, wire.CodeBadCSR, err.Error(), nil)
	}
	return err
}

func revocationJSON(r store.Revocation) wire.Revocation {
	return wire.Revocation{Serial: r.Serial, Reason: r.Reason, ReasonName: ca.ReasonName(r.Reason), RevokedAt: r.RevokedAt.UTC(), RevokedBy: r.RevokedBy}
}

func certJSON(c store.Certificate, now time.Time) wire.Certificate {
	j := wire.Certificate{
		Serial: c.Serial, Identity: c.Identity, CommonName: c.CommonName, Fingerprint: c.Fingerprint,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), KeyType: c.KeyType, Obtained: c.Obtained,
		RenewedFrom: c.RenewedFrom, IssuedAt: c.IssuedAt.UTC(), Status: wire.StatusValid,
	}
	switch {
	case c.Revocation != nil:
		j.Status = wire.StatusRevoked
		rv := revocationJSON(*c.Revocation)
		j.Revocation = &rv
	case !now.Before(c.NotAfter):
		j.Status = wire.StatusExpired
	}
	return j
}

const maxList = 10000

func (s *Server) listCertificates(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	f := store.CertFilter{Identity: q.Get("identity"), IdentityPrefix: q.Get("prefix"), Status: q.Get("status"), Now: s.o.Clock.Now(), Limit: maxList}
	switch f.Status {
	case "", wire.StatusValid, wire.StatusRevoked, wire.StatusExpired:
	default:
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("status %q is not one of valid, revoked, expired", f.Status), nil)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxList {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("limit %q is not between 1 and %d", l, maxList), nil)
		}
		f.Limit = n
	}
	certs, err := s.o.Store.ListCertificates(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	if err := s.auditAdmin(r.Context(), c, "list certificates"); err != nil {
		return 0, nil, err
	}
	out := make([]wire.Certificate, len(certs))
	for i, cert := range certs {
		out[i] = certJSON(cert, f.Now)
	}
	return http.StatusOK, wire.CertificateList{Certificates: out}, nil
}

func (s *Server) showCertificate(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
	if err != nil {
		return 0, nil, err
	}
	serial := strings.ToLower(r.PathValue("serial"))
	if _, err := hex.DecodeString(strings.Repeat("0", len(serial)%2) + serial); err != nil || serial == "" || len(serial) > 40 {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadSerial, fmt.Sprintf("serial %q is not a hex serial number", r.PathValue("serial")), nil)
	}
	cert, err := s.o.Store.GetCertificate(r.Context(), serial)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no certificate with serial %s", serial), nil)
	}
	if err != nil {
		return 0, nil, err
	}
	if err := s.auditAdmin(r.Context(), c, "show certificate "+serial); err != nil {
		return 0, nil, err
	}
	j := certJSON(cert, s.o.Clock.Now())
	j.PEM = string(pemEncodeDER(cert.DER))
	return http.StatusOK, j, nil
}

func (s *Server) revoke(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
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

const maxAuditPage = 5000

func (s *Server) auditRecords(r *http.Request) (int, any, error) {
	if _, err := s.authenticate(r, "/admin/"); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	after, limit := int64(0), maxAuditPage
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("after %q is not a record number", v), nil)
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditPage {
			return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("limit %q is not between 1 and %d", v, maxAuditPage), nil)
		}
		limit = n
	}
	recs, err := s.o.Store.AuditRecords(r.Context(), after, limit)
	if err != nil {
		return 0, nil, err
	}
	out := make([]wire.AuditRecord, len(recs))
	for i, rec := range recs {
		out[i] = wire.AuditRecord{Seq: rec.Seq, Time: rec.Time.UTC(), Actor: rec.Actor, Action: rec.Action, Subject: rec.Subject,
			Detail: rec.Detail, PrevHash: hex.EncodeToString(rec.PrevHash), Hash: hex.EncodeToString(rec.Hash)}
	}
	return http.StatusOK, wire.AuditRecords{Records: out}, nil
}

func (s *Server) revocations(r *http.Request) (int, any, error) {
	if _, err := s.authenticate(r, "/admin/", "/gateway/"); err != nil {
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
	return http.StatusOK, wire.Revocations{Position: snap.Position, Revoked: out}, nil
}

// feedHandler streams the change feed to a gateway (or an admin watching
// by hand with curl -N).
func (s *Server) feedHandler(w http.ResponseWriter, r *http.Request) {
	c, err := s.authenticate(r, "/admin/", "/gateway/")
	if err != nil {
		writeError(w, r, s.o.Log, classify(err))
		return
	}
	after, err := feed.ParseAfter(r)
	if err != nil {
		writeError(w, r, s.o.Log, apiError(http.StatusBadRequest, wire.CodeBadRequest, err.Error(), nil))
		return
	}
	s.o.Log.Info("feed follower connected", "identity", c.ID.String(), "serial", c.Serial, "after", after)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	err = s.feed.Stream(ctx, w, after)
	s.o.Log.Info("feed follower gone", "identity", c.ID.String(), "serial", c.Serial, "err", err)
}

func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(pemutil.EncodeCertificates(s.o.Authority.Roots()...))
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.o.Store.Ping(ctx); err != nil {
		writeError(w, r, s.o.Log, apiError(http.StatusServiceUnavailable, wire.CodeUnavailable, "the store is unavailable", err))
		return
	}
	writeJSON(w, http.StatusOK, wire.Health{Status: "ok"})
}

func pemEncodeDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

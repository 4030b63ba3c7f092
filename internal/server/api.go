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
)

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", s.handle(s.createToken))
	mux.HandleFunc("POST /v1/enroll", s.handle(s.enroll))
	mux.HandleFunc("POST /v1/renew", s.handle(s.renew))
	mux.HandleFunc("GET /v1/certificates", s.handle(s.listCertificates))
	mux.HandleFunc("GET /v1/certificates/{serial}", s.handle(s.showCertificate))
	mux.HandleFunc("POST /v1/revoke", s.handle(s.revoke))
	mux.HandleFunc("GET /v1/audit", s.handle(s.auditRecords))
	mux.HandleFunc("GET /v1/revocations", s.handle(s.revocations))
	mux.HandleFunc("GET /v1/feed", s.feedHandler)
	mux.HandleFunc("GET /v1/bundle", s.bundle)
	mux.HandleFunc("GET /crl", s.crl)
	mux.HandleFunc("GET /ocsp/{req...}", s.ocspGET)
	mux.HandleFunc("POST /ocsp", s.ocspPOST)
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("/", s.handle(func(*http.Request) (int, any, error) {
		return 0, nil, apiError(http.StatusNotFound, "not_found", "no such endpoint", nil)
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
		return apiError(http.StatusServiceUnavailable, "unavailable", "the store is unavailable; nothing was issued or changed, try again", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apiError(http.StatusServiceUnavailable, "unavailable", "request cancelled or timed out; nothing was changed", err)
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
			return apiError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), nil)
		}
		if errors.Is(err, io.EOF) {
			return apiError(http.StatusBadRequest, "bad_request", "request body is empty", nil)
		}
		return apiError(http.StatusBadRequest, "bad_request", "invalid JSON: "+err.Error(), nil)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), nil)
		}
		return apiError(http.StatusBadRequest, "bad_request", "invalid JSON: data after the object", nil)
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
		return Caller{}, apiError(http.StatusUnauthorized, "unauthenticated", "a client certificate is required", nil)
	}
	leaf := r.TLS.PeerCertificates[0]
	id, err := identity.FromCertificateIn(leaf, s.o.Authority.TrustDomain())
	if err != nil {
		return Caller{}, apiError(http.StatusForbidden, "forbidden", "client certificate has no identity of this trust domain", err)
	}
	allowed := false
	for _, k := range kinds {
		allowed = allowed || strings.HasPrefix(id.Path(), k)
	}
	if !allowed {
		return Caller{}, apiError(http.StatusForbidden, "forbidden", fmt.Sprintf("identity %s may not use this endpoint", id), nil)
	}
	serial := ca.SerialHex(leaf.SerialNumber)
	rec, err := s.o.Store.GetCertificate(r.Context(), serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Caller{}, apiError(http.StatusForbidden, "forbidden", "client certificate is not one this CA issued", nil)
	case err != nil:
		return Caller{}, err
	case rec.Revocation != nil:
		return Caller{}, apiError(http.StatusForbidden, "revoked", fmt.Sprintf("client certificate %s is revoked", serial), nil)
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

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Identity string `json:"identity"`
	TTL      string `json:"ttl,omitempty"` // Go duration; default from config
}

// CreateTokenResponse answers POST /v1/tokens. Token is a secret.
type CreateTokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	Identity  string    `json:"identity"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) createToken(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
	if err != nil {
		return 0, nil, err
	}
	var req CreateTokenRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	id, err := identity.Parse(req.Identity)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, "bad_identity", err.Error(), nil)
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return 0, nil, apiError(http.StatusBadRequest, "bad_ttl", fmt.Sprintf("ttl %q is not a positive duration such as 15m", req.TTL), nil)
		}
	}
	t, err := s.o.Authority.CreateToken(r.Context(), c.ID.String(), id, ttl)
	switch {
	case errors.Is(err, ca.ErrIdentity):
		return 0, nil, apiError(http.StatusBadRequest, "bad_identity", err.Error(), nil)
	case err != nil && strings.Contains(err.Error(), "TTL"):
		return 0, nil, apiError(http.StatusBadRequest, "bad_ttl", err.Error(), nil)
	case err != nil:
		return 0, nil, err
	}
	s.o.Log.Info("token created", "token_id", t.ID, "identity", id.String(), "by", c.ID.String(), "expires_at", t.ExpiresAt)
	return http.StatusCreated, CreateTokenResponse{Token: t.String(), ID: t.ID, Identity: id.String(), ExpiresAt: t.ExpiresAt}, nil
}

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM
}

// EnrollResponse carries the new certificate, its chain and the bundle.
type EnrollResponse struct {
	Serial      string    `json:"serial"`
	Identity    string    `json:"identity"`
	NotAfter    time.Time `json:"not_after"`
	Certificate string    `json:"certificate"` // PEM leaf
	Chain       string    `json:"chain"`       // PEM intermediates
	Bundle      string    `json:"bundle"`      // PEM roots
}

func (s *Server) enroll(r *http.Request) (int, any, error) {
	var req EnrollRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	tok, err := token.Parse(req.Token)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, "bad_token", err.Error(), nil)
	}
	if tok.RootFingerprint != s.o.Authority.RootFingerprint() {
		return 0, nil, apiError(http.StatusBadRequest, "bad_token", "token was made for another CA (root fingerprint differs)", nil)
	}
	iss, err := s.o.Authority.Enroll(r.Context(), tok, []byte(req.CSR))
	if err != nil {
		return 0, nil, enrollError(err)
	}
	s.o.Log.Info("certificate issued", "serial", iss.Record.Serial, "identity", iss.Record.Identity,
		"token_id", tok.ID, "not_after", iss.Record.NotAfter)
	return http.StatusCreated, issuedResponse(iss), nil
}

// RenewRequest is the body of POST /v1/renew.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM, for a new key and the same identity
}

// renew issues a successor certificate to a client authenticated by its
// current certificate (verified against the roots by the handshake).
func (s *Server) renew(r *http.Request) (int, any, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return 0, nil, apiError(http.StatusUnauthorized, "unauthenticated", "renewal needs the current client certificate", nil)
	}
	var req RenewRequest
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
		return apiError(http.StatusForbidden, "revoked", "certificate is revoked; enroll again with a new token", nil)
	case errors.Is(err, ca.ErrRenewExpired):
		return apiError(http.StatusForbidden, "expired", "certificate has expired; enroll again with a new token", nil)
	case errors.Is(err, ca.ErrRenewUnknown):
		return apiError(http.StatusForbidden, "unknown_certificate", "certificate was not issued by this CA", nil)
	case errors.Is(err, ca.ErrSameKey):
		return apiError(http.StatusBadRequest, "same_key", "renewal must use a new key", nil)
	}
	return enrollError(err)
}

// issuedResponse is the answer to an enrollment or a renewal.
func issuedResponse(iss ca.Issued) EnrollResponse {
	return EnrollResponse{
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
		return apiError(http.StatusForbidden, "token_invalid", "token is not valid", nil)
	case errors.Is(err, ca.ErrTokenUsed):
		return apiError(http.StatusForbidden, "token_used", "token was already used", nil)
	case errors.Is(err, ca.ErrTokenExpired):
		return apiError(http.StatusForbidden, "token_expired", "token has expired", nil)
	case errors.Is(err, csr.ErrTooLarge):
		return apiError(http.StatusRequestEntityTooLarge, "too_large", err.Error(), nil)
	case errors.Is(err, csr.ErrMalformed), errors.Is(err, csr.ErrSignature), errors.Is(err, csr.ErrKeyType),
		errors.Is(err, csr.ErrIdentity), errors.Is(err, csr.ErrExtraSAN), errors.Is(err, ca.ErrIdentity), errors.Is(err, ca.ErrProfile):
		return apiError(http.StatusBadRequest, "bad_csr", err.Error(), nil)
	}
	return err
}

// CertificateJSON is a certificate record in API responses.
type CertificateJSON struct {
	Serial      string          `json:"serial"`
	Identity    string          `json:"identity"`
	CommonName  string          `json:"common_name"`
	Fingerprint string          `json:"fingerprint_sha256"`
	NotBefore   time.Time       `json:"not_before"`
	NotAfter    time.Time       `json:"not_after"`
	KeyType     string          `json:"key_type"`
	Obtained    string          `json:"obtained"`
	RenewedFrom string          `json:"renewed_from,omitempty"`
	IssuedAt    time.Time       `json:"issued_at"`
	Status      string          `json:"status"` // valid, expired, revoked
	Revocation  *RevocationJSON `json:"revocation,omitempty"`
	PEM         string          `json:"pem,omitempty"`
}

// RevocationJSON describes a revocation.
type RevocationJSON struct {
	Serial     string    `json:"serial"`
	Reason     int       `json:"reason"`
	ReasonName string    `json:"reason_name"`
	RevokedAt  time.Time `json:"revoked_at"`
	RevokedBy  string    `json:"revoked_by"`
}

func revocationJSON(r store.Revocation) *RevocationJSON {
	return &RevocationJSON{Serial: r.Serial, Reason: r.Reason, ReasonName: ca.ReasonName(r.Reason), RevokedAt: r.RevokedAt.UTC(), RevokedBy: r.RevokedBy}
}

func certJSON(c store.Certificate, now time.Time) CertificateJSON {
	j := CertificateJSON{
		Serial: c.Serial, Identity: c.Identity, CommonName: c.CommonName, Fingerprint: c.Fingerprint,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), KeyType: c.KeyType, Obtained: c.Obtained,
		RenewedFrom: c.RenewedFrom, IssuedAt: c.IssuedAt.UTC(), Status: "valid",
	}
	switch {
	case c.Revocation != nil:
		j.Status = "revoked"
		j.Revocation = revocationJSON(*c.Revocation)
	case !now.Before(c.NotAfter):
		j.Status = "expired"
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
	case "", "valid", "revoked", "expired":
	default:
		return 0, nil, apiError(http.StatusBadRequest, "bad_request", fmt.Sprintf("status %q is not one of valid, revoked, expired", f.Status), nil)
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxList {
			return 0, nil, apiError(http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q is not between 1 and %d", l, maxList), nil)
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
	out := make([]CertificateJSON, len(certs))
	for i, cert := range certs {
		out[i] = certJSON(cert, f.Now)
	}
	return http.StatusOK, map[string]any{"certificates": out}, nil
}

func (s *Server) showCertificate(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
	if err != nil {
		return 0, nil, err
	}
	serial := strings.ToLower(r.PathValue("serial"))
	if _, err := hex.DecodeString(strings.Repeat("0", len(serial)%2) + serial); err != nil || serial == "" || len(serial) > 40 {
		return 0, nil, apiError(http.StatusBadRequest, "bad_serial", fmt.Sprintf("serial %q is not a hex serial number", r.PathValue("serial")), nil)
	}
	cert, err := s.o.Store.GetCertificate(r.Context(), serial)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, apiError(http.StatusNotFound, "not_found", fmt.Sprintf("no certificate with serial %s", serial), nil)
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

// RevokeRequest is the body of POST /v1/revoke: exactly one selector.
type RevokeRequest struct {
	Serial         string `json:"serial,omitempty"`
	Identity       string `json:"identity,omitempty"`
	IdentityPrefix string `json:"identity_prefix,omitempty"`
	Reason         string `json:"reason,omitempty"` // RFC 5280 name or code
	// DryRun lists what would be revoked and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

func (s *Server) revoke(r *http.Request) (int, any, error) {
	c, err := s.authenticate(r, "/admin/")
	if err != nil {
		return 0, nil, err
	}
	var req RevokeRequest
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
		return 0, nil, apiError(http.StatusBadRequest, "bad_request", "give exactly one of serial, identity, identity_prefix", nil)
	}
	reason, err := ca.ParseReason(req.Reason)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, "bad_reason", err.Error(), nil)
	}
	sreq := store.RevokeRequest{Serial: strings.ToLower(req.Serial), Reason: reason, By: c.ID.String(), Now: s.o.Clock.Now()}
	if req.Identity != "" {
		id, err := identity.Parse(req.Identity)
		if err != nil {
			return 0, nil, apiError(http.StatusBadRequest, "bad_identity", err.Error(), nil)
		}
		sreq.Identity = id.String()
	}
	if req.IdentityPrefix != "" {
		id, err := identity.Parse(req.IdentityPrefix)
		if err != nil {
			return 0, nil, apiError(http.StatusBadRequest, "bad_identity", err.Error(), nil)
		}
		sreq.IdentityPrefix = id.String()
	}
	if req.DryRun {
		revs, err := s.wouldRevoke(r.Context(), sreq)
		if err != nil {
			return 0, nil, err
		}
		out := make([]*RevocationJSON, len(revs))
		for i, rv := range revs {
			out[i] = revocationJSON(rv)
		}
		return http.StatusOK, map[string]any{"revoked": out, "dry_run": true}, nil
	}
	revs, err := s.o.Authority.Revoke(r.Context(), sreq)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, apiError(http.StatusNotFound, "not_found", fmt.Sprintf("no certificate with serial %s", sreq.Serial), nil)
	}
	if err != nil {
		return 0, nil, err
	}
	out := make([]*RevocationJSON, len(revs))
	for i, rv := range revs {
		out[i] = revocationJSON(rv)
		s.o.Log.Info("certificate revoked", "serial", rv.Serial, "reason", ca.ReasonName(rv.Reason), "by", rv.RevokedBy)
	}
	return http.StatusOK, map[string]any{"revoked": out}, nil
}

// wouldRevoke lists what req would revoke, by the same rules as the store:
// the one serial unless already revoked, or every current certificate of
// the identity or under the prefix.
func (s *Server) wouldRevoke(ctx context.Context, req store.RevokeRequest) ([]store.Revocation, error) {
	var certs []store.Certificate
	if req.Serial != "" {
		c, err := s.o.Store.GetCertificate(ctx, req.Serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apiError(http.StatusNotFound, "not_found", fmt.Sprintf("no certificate with serial %s", req.Serial), nil)
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

// AuditRecordJSON is an audit record in API responses.
type AuditRecordJSON struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Subject  string    `json:"subject"`
	Detail   string    `json:"detail,omitempty"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
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
			return 0, nil, apiError(http.StatusBadRequest, "bad_request", fmt.Sprintf("after %q is not a record number", v), nil)
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditPage {
			return 0, nil, apiError(http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q is not between 1 and %d", v, maxAuditPage), nil)
		}
		limit = n
	}
	recs, err := s.o.Store.AuditRecords(r.Context(), after, limit)
	if err != nil {
		return 0, nil, err
	}
	out := make([]AuditRecordJSON, len(recs))
	for i, rec := range recs {
		out[i] = AuditRecordJSON{Seq: rec.Seq, Time: rec.Time.UTC(), Actor: rec.Actor, Action: rec.Action, Subject: rec.Subject,
			Detail: rec.Detail, PrevHash: hex.EncodeToString(rec.PrevHash), Hash: hex.EncodeToString(rec.Hash)}
	}
	return http.StatusOK, map[string]any{"records": out}, nil
}

// RevokedJSON is one entry of GET /v1/revocations.
type RevokedJSON struct {
	Serial   string    `json:"serial"`
	Identity string    `json:"identity"`
	Reason   int       `json:"reason"`
	NotAfter time.Time `json:"not_after"`
}

func (s *Server) revocations(r *http.Request) (int, any, error) {
	if _, err := s.authenticate(r, "/admin/", "/gateway/"); err != nil {
		return 0, nil, err
	}
	snap, err := s.o.Store.RevocationSnapshot(r.Context(), s.o.Clock.Now())
	if err != nil {
		return 0, nil, err
	}
	out := make([]RevokedJSON, len(snap.Revoked))
	for i, e := range snap.Revoked {
		out[i] = RevokedJSON{Serial: e.Serial, Identity: e.Identity, Reason: e.Reason, NotAfter: e.NotAfter.UTC()}
	}
	return http.StatusOK, map[string]any{"position": snap.Position, "revoked": out}, nil
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
		writeError(w, r, s.o.Log, apiError(http.StatusBadRequest, "bad_request", err.Error(), nil))
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
		writeError(w, r, s.o.Log, apiError(http.StatusServiceUnavailable, "unavailable", "the store is unavailable", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func pemEncodeDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

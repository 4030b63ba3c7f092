package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// Handler returns the API's HTTP handler. The handlers live by resource:
// tokens.go, issue.go (enroll, renew), certificates.go, revoke.go, audit.go,
// revocations.go (snapshot and feed), status.go (CRL, OCSP); auth.go
// authenticates callers and errors.go writes the error envelope.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathTokens, s.handle(s.createToken))
	mux.HandleFunc("POST "+wire.PathEnroll, s.handle(s.enroll))
	mux.HandleFunc("POST "+wire.PathRenew, s.handle(s.renew))
	mux.HandleFunc("GET "+wire.PathCertificates, s.handle(s.listCertificates))
	mux.HandleFunc("GET "+wire.PathCertificates+"/{serial}", s.handle(s.showCertificate))
	mux.HandleFunc("POST "+wire.PathRevoke, s.handle(s.revoke))
	mux.HandleFunc("GET "+wire.PathAudit, s.handle(s.auditRecords))
	mux.HandleFunc("GET "+wire.PathAuditCheckpoint, s.auditCheckpoint)
	mux.HandleFunc("GET "+wire.PathAuditKey, s.auditKey)
	mux.HandleFunc("GET "+wire.PathAuditUnrecorded, s.handle(s.auditUnrecorded))
	mux.HandleFunc("GET "+wire.PathRevocations, s.handle(s.revocations))
	mux.HandleFunc("GET "+wire.PathRoles, s.handle(s.listRoles))
	mux.HandleFunc("POST "+wire.PathRoles, s.handle(s.grantRole))
	mux.HandleFunc("POST "+wire.PathRolesRevoke, s.handle(s.revokeRole))
	s.legacyRoutes(mux)
	mux.HandleFunc("GET "+wire.PathFeed, s.feedHandler)
	mux.HandleFunc("GET "+wire.PathBundle, s.bundle)
	mux.HandleFunc("GET "+wire.PathCA, s.handle(s.caInfo))
	s.statusRoutes(mux)
	s.estRoutes(mux)
	mux.HandleFunc("GET "+wire.PathHealth, s.health)
	mux.HandleFunc("POST "+wire.PathUsage, s.handleLimit(s.recordUsage, maxUsageBody))
	mux.HandleFunc("GET "+wire.PathIdentities, s.handle(s.listIdentities))
	s.consoleRoutes(mux)
	mux.HandleFunc("/", s.handle(func(*http.Request) (int, any, error) {
		return 0, nil, apiError(http.StatusNotFound, wire.CodeNotFound, "no such endpoint", nil)
	}))
	return mux
}

type handlerFunc func(r *http.Request) (status int, body any, err error)

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return s.handleLimit(h, s.o.MaxBodyBytes)
}

// handleLimit is handle with its own bound on the request body.
func (s *Server) handleLimit(h handlerFunc, maxBody int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
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
	switch v := v.(type) {
	case *wire.EnrollRequest:
		return decodeStrings(r.Body, v, [2]string{"token", "csr"}, [2]*string{&v.Token, &v.CSR})
	case *wire.RenewRequest:
		return decodeStrings(r.Body, v, [2]string{"csr", ""}, [2]*string{&v.CSR, nil})
	}
	return decodeJSON(r.Body, v)
}

// decodeJSON is decode with encoding/json.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
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

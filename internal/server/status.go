package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// MaxOCSPRequest is the largest OCSP request accepted, POST body or decoded
// GET path. A request about one certificate with a nonce is ~110 bytes; a
// signed one with a certificate chain stays well under 4 KiB.
const MaxOCSPRequest = 4 << 10

// ErrorHeader carries the reason an OCSP request was refused, for people
// with curl: OCSP error responses have no room for text.
const ErrorHeader = "Certgate-Error"

// StatusHandler serves certificate status only: GET /crl, GET /crl/KEYID,
// GET /ca/KEYID.crt, GET /ocsp/{req} and POST /ocsp, the same handlers as
// on the API; every other path is a
// 404. It is meant for a plain-HTTP listener (CRLs and OCSP responses are
// signed, and many verifiers fetch them over HTTP only), so it never
// exposes the API, which needs TLS. The status service's CRL and OCSP
// signer are kept current by Serve; without it they are built on demand.
func (s *Server) StatusHandler() http.Handler {
	mux := http.NewServeMux()
	s.statusRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "no such endpoint on the status listener (CRL and OCSP only)", nil))
	})
	return mux
}

// statusRoutes adds the CRL and OCSP handlers to mux: the API and the
// status listener serve the same ones.
func (s *Server) statusRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+wire.PathCRL, s.crl)
	mux.HandleFunc("GET "+wire.PathCRL+"/{keyid}", s.crlOf)
	mux.HandleFunc("GET "+wire.PathCACert+"/{file}", s.caCert)
	mux.HandleFunc("GET "+wire.PathOCSP+"/{req...}", s.ocspGET)
	mux.HandleFunc("POST "+wire.PathOCSP, s.ocspPOST)
}

// crl serves the current DER CRL (RFC 5280) with caching headers that end
// no later than its nextUpdate. No authentication: it is public.
func (s *Server) crl(w http.ResponseWriter, r *http.Request) {
	c, err := s.status.CRL(r.Context())
	s.serveCRL(w, r, c, err)
}

func (s *Server) serveCRL(w http.ResponseWriter, r *http.Request, c *certstatus.CRL, err error) {
	if err != nil {
		writeError(w, r, s.o.Log, classify(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	setCacheHeaders(h, c.DER, s.status.HTTPMaxAge(c.NextUpdate), s.o.Clock.Now())
	http.ServeContent(w, r, "", c.ThisUpdate, bytes.NewReader(c.DER))
}

// ocspGET answers an OCSP request sent as base64 in the path (RFC 6960
// appendix A.1, RFC 5019 section 5), the cacheable form.
func (s *Server) ocspGET(w http.ResponseWriter, r *http.Request) {
	enc := r.PathValue("req")
	if len(enc) > base64.StdEncoding.EncodedLen(MaxOCSPRequest) {
		s.ocspRefuse(w, r, http.StatusRequestURITooLong, ocsp.MalformedRequestErrorResponse,
			fmt.Sprintf("OCSP request is longer than %d bytes", MaxOCSPRequest))
		return
	}
	der, err := decodeBase64(enc)
	if err != nil {
		s.ocspRefuse(w, r, http.StatusOK, ocsp.MalformedRequestErrorResponse, "OCSP request in the URL is not base64: "+err.Error())
		return
	}
	s.ocspAnswer(w, r, der, true)
}

// ocspPOST answers an OCSP request in the body.
func (s *Server) ocspPOST(w http.ResponseWriter, r *http.Request) {
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/ocsp-request" {
		s.ocspRefuse(w, r, http.StatusUnsupportedMediaType, ocsp.MalformedRequestErrorResponse,
			fmt.Sprintf("content type %q is not application/ocsp-request", r.Header.Get("Content-Type")))
		return
	}
	der, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOCSPRequest))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.ocspRefuse(w, r, http.StatusRequestEntityTooLarge, ocsp.MalformedRequestErrorResponse,
			fmt.Sprintf("OCSP request is larger than %d bytes", MaxOCSPRequest))
		return
	case err != nil:
		s.ocspRefuse(w, r, http.StatusBadRequest, ocsp.MalformedRequestErrorResponse, "reading the request: "+err.Error())
		return
	}
	s.ocspAnswer(w, r, der, false)
}

// ocspAnswer responds to der. OCSP-level refusals (malformed, unauthorized)
// are OCSP error responses with HTTP 200, as RFC 6960 has them, so an OCSP
// client reports the OCSP status; a store outage is tryLater with 503.
func (s *Server) ocspAnswer(w http.ResponseWriter, r *http.Request, der []byte, get bool) {
	resp, err := s.status.Respond(r.Context(), der)
	switch {
	case errors.Is(err, certstatus.ErrMalformed):
		s.ocspRefuse(w, r, http.StatusOK, ocsp.MalformedRequestErrorResponse, err.Error())
		return
	case errors.Is(err, certstatus.ErrUnauthorized):
		s.ocspRefuse(w, r, http.StatusOK, ocsp.UnauthorizedErrorResponse, err.Error())
		return
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.o.Log.Error("OCSP request failed", "err", err)
		w.Header().Set("Retry-After", "1")
		s.ocspRefuse(w, r, http.StatusServiceUnavailable, ocsp.TryLaterErrorResponse, "the store is unavailable; try again")
		return
	case err != nil:
		s.o.Log.Error("OCSP request failed", "err", err)
		s.ocspRefuse(w, r, http.StatusInternalServerError, ocsp.InternalErrorErrorResponse, "internal error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	if get && !resp.Nonce {
		setCacheHeaders(h, resp.DER, s.status.HTTPMaxAge(resp.NextUpdate), s.o.Clock.Now())
		h.Set("Last-Modified", resp.ThisUpdate.UTC().Format(http.TimeFormat))
	} else {
		// A POST or a nonce answers one request only.
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.DER)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.DER)
}

// ocspRefuse sends an OCSP error response body with status and the reason
// in [ErrorHeader]; nothing is cached and nothing was changed.
func (s *Server) ocspRefuse(w http.ResponseWriter, r *http.Request, status int, body []byte, reason string) {
	s.o.Log.Info("OCSP request refused", "method", r.Method, "status", status, "reason", reason)
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	h.Set("Cache-Control", "no-store")
	h.Set(ErrorHeader, reason)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// setCacheHeaders lets HTTP caches keep body for maxAge (RFC 5019
// section 6.2): public, no-transform, and an ETag of its digest.
func setCacheHeaders(h http.Header, body []byte, maxAge time.Duration, now time.Time) {
	sum := sha256.Sum256(body)
	secs := int(maxAge / time.Second)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d, no-transform, must-revalidate", secs))
	h.Set("Expires", now.Add(time.Duration(secs)*time.Second).UTC().Format(http.TimeFormat))
}

// decodeBase64 reads the GET form's request: standard base64 as RFC 6960
// specifies, also without padding or in the URL-safe alphabet, which
// clients send too. The path value is already URL-decoded.
func decodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

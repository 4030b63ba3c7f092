package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/est"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/token"
)

// ESTBootstrap lets devices that hold a certificate of another CA (a
// manufacturer's device identity, RFC 7030 §3.3.2) enroll over EST without
// a token. The identity they get is bound to that certificate:
// spiffe://TRUST-DOMAIN + IdentityPrefix + the certificate's subject serial
// number (or, without one, its common name); the CSR must ask for exactly
// that. A role prefix (/admin/, /gateway/) is never granted this way.
type ESTBootstrap struct {
	Name           string
	Roots          []*x509.Certificate
	IdentityPrefix string
}

// estRoutes serves EST (RFC 7030) under /.well-known/est/. Every issuance
// goes through the CA service as /v1/enroll and /v1/renew do (same checks,
// same store transaction, same audit record); only the encoding and the
// authentication differ.
func (s *Server) estRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+est.PathPrefix+est.CACerts, s.estHandle(s.estCACerts))
	mux.HandleFunc("GET "+est.PathPrefix+est.CSRAttrs, s.estHandle(func(*http.Request) (*estAnswer, error) {
		return &estAnswer{contentType: est.MediaCSRAttrs, body: est.CSRAttributes()}, nil
	}))
	mux.HandleFunc("POST "+est.PathPrefix+est.SimpleEnroll, s.estHandle(s.estEnroll))
	mux.HandleFunc("POST "+est.PathPrefix+est.SimpleReenroll, s.estHandle(s.estReenroll))
}

type estAnswer struct {
	contentType string
	body        []byte
}

// estError is an EST refusal: a status and a one-line text/plain message
// (RFC 7030 §4.2.3 allows plain text).
type estError struct {
	status int
	msg    string
	cause  error
}

func (e *estError) Error() string { return e.msg }
func (e *estError) Unwrap() error { return e.cause }

func estRefuse(status int, cause error, format string, args ...any) error {
	return &estError{status: status, msg: fmt.Sprintf(format, args...), cause: cause}
}

// estRealm is the HTTP Basic realm a 401 names: the password is an
// enrollment token.
const estRealm = `Basic realm="certgate EST (password: enrollment token)", charset="UTF-8"`

func (s *Server) estHandle(h func(*http.Request) (*estAnswer, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
		a, err := h(r)
		if err != nil {
			var e *estError
			if !errors.As(err, &e) {
				cl := classify(err)
				var api *Error
				if errors.As(cl, &api) {
					e = &estError{status: api.Status, msg: api.Message, cause: err}
				} else {
					e = &estError{status: http.StatusInternalServerError, msg: "internal error", cause: err}
				}
			}
			level := slog.LevelInfo
			if e.status >= 500 {
				level = slog.LevelError
			}
			s.o.Log.LogAttrs(r.Context(), level, "request failed", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", e.status), slog.Any("err", err))
			if e.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", estRealm)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(e.status)
			io.WriteString(w, e.msg+"\n")
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("Content-Transfer-Encoding", est.TransferEncoding)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		w.Write(a.body)
	}
}

// estCACerts is the chain a leaf is sent with and the roots (RFC 7030
// §4.1), with no client authentication.
func (s *Server) estCACerts(*http.Request) (*estAnswer, error) {
	h := s.o.Authority.Hierarchy()
	certs := append(append([]*x509.Certificate{}, h.Chain...), h.Roots...)
	b, err := est.CertsOnly(certs...)
	if err != nil {
		return nil, err
	}
	return &estAnswer{contentType: est.MediaCertsOnly, body: b}, nil
}

// estEnroll is /simpleenroll: authenticated by an enrollment token as the
// HTTP Basic password, or by a bootstrap certificate.
func (s *Server) estEnroll(r *http.Request) (*estAnswer, error) {
	_, password, basic := r.BasicAuth()
	var boot *bootstrapDevice
	switch {
	case basic:
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0:
		b, err := s.bootstrapDevice(r.TLS.PeerCertificates)
		if err != nil {
			return nil, err
		}
		boot = b
	default:
		return nil, estRefuse(http.StatusUnauthorized, nil, "authentication required: an enrollment token as the HTTP Basic password, or a bootstrap client certificate")
	}
	pemCSR, _, err := readESTRequest(r)
	if err != nil {
		return nil, err
	}
	var iss ca.Issued
	if boot != nil {
		iss, err = s.o.Authority.EnrollBootstrap(r.Context(), boot.id, pemCSR, boot.actor)
		if err != nil {
			return nil, estIssueError(err)
		}
		s.o.Log.Info("certificate issued", "serial", iss.Record.Serial, "identity", iss.Record.Identity,
			"via", "est", "bootstrap", boot.actor, "not_after", iss.Record.NotAfter)
	} else {
		tok, err := token.Parse(password)
		if err != nil {
			return nil, estRefuse(http.StatusUnauthorized, err, "the HTTP Basic password is not an enrollment token: %v", err)
		}
		if !s.o.Authority.TrustsRoot(tok.RootFingerprint) {
			return nil, estRefuse(http.StatusUnauthorized, nil, "token was made for another CA (root fingerprint differs)")
		}
		iss, err = s.o.Authority.Enroll(r.Context(), tok, pemCSR)
		if err != nil {
			return nil, estIssueError(err)
		}
		s.o.Log.Info("certificate issued", "serial", iss.Record.Serial, "identity", iss.Record.Identity,
			"via", "est", "token_id", tok.ID, "not_after", iss.Record.NotAfter)
	}
	return estIssued(iss)
}

// estReenroll is /simplereenroll: the client authenticates with the
// certificate it renews; the request keeps its subject and identity (RFC
// 7030 §4.2.2) and, as every certgate renewal, brings a new key.
func (s *Server) estReenroll(r *http.Request) (*estAnswer, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, estRefuse(http.StatusUnauthorized, nil, "re-enrollment needs the current client certificate")
	}
	current := r.TLS.PeerCertificates[0]
	pemCSR, req, err := readESTRequest(r)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(req.RawSubject, current.RawSubject) && req.Subject.String() != current.Subject.String() {
		return nil, estRefuse(http.StatusBadRequest, nil, "the request's subject %q differs from the certificate's %q; re-enrollment keeps the subject",
			req.Subject.String(), current.Subject.String())
	}
	iss, err := s.o.Authority.Renew(r.Context(), current, pemCSR)
	if err != nil {
		return nil, estIssueError(err)
	}
	s.o.Log.Info("certificate renewed", "serial", iss.Record.Serial, "renewed_from", iss.Record.RenewedFrom,
		"via", "est", "identity", iss.Record.Identity, "not_after", iss.Record.NotAfter)
	return estIssued(iss)
}

func estIssued(iss ca.Issued) (*estAnswer, error) {
	b, err := est.CertsOnly(iss.Cert)
	if err != nil {
		return nil, err
	}
	return &estAnswer{contentType: est.MediaCertsOnly, body: b}, nil
}

// readESTRequest reads a base64 PKCS#10 body of type application/pkcs10.
func readESTRequest(r *http.Request) ([]byte, *x509.CertificateRequest, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != est.MediaPKCS10 {
		return nil, nil, estRefuse(http.StatusUnsupportedMediaType, err, "Content-Type must be %s", est.MediaPKCS10)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, est.MaxBody+1))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, nil, estRefuse(http.StatusRequestEntityTooLarge, err, "request body is larger than %d bytes", tooBig.Limit)
	case err != nil:
		return nil, nil, estRefuse(http.StatusBadRequest, err, "reading the request: %v", err)
	}
	pemCSR, req, err := est.DecodeCSR(body)
	switch {
	case errors.Is(err, est.ErrTooLarge):
		return nil, nil, estRefuse(http.StatusRequestEntityTooLarge, err, "request body is larger than %d bytes", est.MaxBody)
	case err != nil:
		return nil, nil, estRefuse(http.StatusBadRequest, err, "%v", err)
	}
	return pemCSR, req, nil
}

// estIssueError maps the CA's refusals to EST answers: a token that does
// not authenticate is a 401, one that authenticates but may not be used
// (spent, expired) or a certificate that may not renew a 403, a request
// the CA will not sign a 400.
func estIssueError(err error) error {
	switch {
	case errors.Is(err, ca.ErrTokenInvalid):
		return estRefuse(http.StatusUnauthorized, err, "token is not valid")
	case errors.Is(err, ca.ErrTokenUsed):
		return estRefuse(http.StatusForbidden, err, "token was already used")
	case errors.Is(err, ca.ErrTokenExpired):
		return estRefuse(http.StatusForbidden, err, "token has expired")
	case errors.Is(err, ca.ErrRenewRevoked):
		return estRefuse(http.StatusForbidden, err, "certificate is revoked; enroll again with a new token")
	case errors.Is(err, ca.ErrRenewExpired):
		return estRefuse(http.StatusForbidden, err, "certificate has expired; enroll again with a new token")
	case errors.Is(err, ca.ErrRenewUnknown):
		return estRefuse(http.StatusForbidden, err, "certificate was not issued by this CA")
	case errors.Is(err, ca.ErrSameKey):
		return estRefuse(http.StatusBadRequest, err, "renewal must use a new key")
	case errors.Is(err, csr.ErrTooLarge):
		return estRefuse(http.StatusRequestEntityTooLarge, err, "%v", err)
	case errors.Is(err, csr.ErrMalformed), errors.Is(err, csr.ErrSignature), errors.Is(err, csr.ErrKeyType),
		errors.Is(err, csr.ErrIdentity), errors.Is(err, csr.ErrExtraSAN), errors.Is(err, ca.ErrIdentity), errors.Is(err, ca.ErrProfile):
		return estRefuse(http.StatusBadRequest, err, "%v", err)
	}
	return err
}

// bootstrapDevice is a client authenticated by a bootstrap certificate.
type bootstrapDevice struct {
	id    identity.ID
	actor string // "bootstrap:NAME:SHA256" for the audit record
}

// bootstrapDevice verifies the client's chain against each configured
// bootstrap CA and binds it to its identity.
func (s *Server) bootstrapDevice(certs []*x509.Certificate) (*bootstrapDevice, error) {
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for i, b := range s.o.ESTBootstrap {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: s.currentTrust().clients.bootstrap[i], Intermediates: inter, CurrentTime: s.o.Clock.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			continue
		}
		name := leaf.Subject.SerialNumber
		if name == "" {
			name = leaf.Subject.CommonName
		}
		id, err := identity.New(s.o.Authority.TrustDomain(), b.IdentityPrefix+name)
		if err != nil || name == "" {
			return nil, estRefuse(http.StatusForbidden, err, "the bootstrap certificate's subject names no device usable in an identity (serial number %q, common name %q)",
				leaf.Subject.SerialNumber, leaf.Subject.CommonName)
		}
		fp := sha256.Sum256(leaf.Raw)
		return &bootstrapDevice{id: id, actor: "bootstrap:" + b.Name + ":" + hex.EncodeToString(fp[:])}, nil
	}
	return nil, estRefuse(http.StatusForbidden, nil, "simpleenroll takes an enrollment token (HTTP Basic password) or a bootstrap certificate; this client certificate is neither (a certgate certificate renews with simplereenroll)")
}

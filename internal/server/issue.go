package server

import (
	"errors"
	"net/http"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/token"
	"github.com/certgate/certgate/internal/wire"
)

// enroll answers POST /v1/enroll: a token and a CSR for a certificate. The
// token is the credential; no client certificate is needed.
func (s *Server) enroll(r *http.Request) (int, any, error) {
	var req wire.EnrollRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	tok, err := token.Parse(req.Token)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadToken, err.Error(), nil)
	}
	if !s.o.Authority.TrustsRoot(tok.RootFingerprint) {
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

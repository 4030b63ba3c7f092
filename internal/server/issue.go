package server

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

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
	return http.StatusCreated, s.issuedResponse(iss), nil
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
	return http.StatusCreated, s.issuedResponse(iss), nil
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

// issuedResponse is the answer to an enrollment or a renewal: a
// wire.EnrollResponse, written as encoding/json would write it (checked by
// TestIssuedResponseJSON) without its reflection, and with the chain and
// the bundle escaped once per hierarchy (pemText).
func (s *Server) issuedResponse(iss ca.Issued) any {
	b := make([]byte, 0, 4096)
	b = append(b, `{"serial":`...)
	b = appendJSONString(b, iss.Record.Serial)
	b = append(b, `,"identity":`...)
	b = appendJSONString(b, iss.Record.Identity)
	b = append(b, `,"not_after":`...)
	t, err := iss.Cert.NotAfter.MarshalJSON()
	if err != nil {
		// A year outside 0-9999, which no certificate has: encoding/json
		// says what it makes of it.
		return wire.EnrollResponse{Serial: iss.Record.Serial, Identity: iss.Record.Identity, NotAfter: iss.Cert.NotAfter}
	}
	b = append(b, t...)
	b = append(b, `,"certificate":`...)
	b = appendJSONString(b, string(pemutil.EncodeCertificates(iss.Cert)))
	b = append(b, `,"chain":`...)
	b = append(b, s.chainPEM.encode(iss.Chain)...)
	b = append(b, `,"bundle":`...)
	b = append(b, s.bundlePEM.encode(iss.Roots)...)
	return rawJSON(append(b, "}\n"...))
}

// rawJSON is an answer already encoded, with its final newline; writeJSON
// sends it as it is.
type rawJSON []byte

// appendJSONString appends str as a JSON string, escaped as encoding/json
// escapes it. PEM text (ASCII letters, digits, "+/=- " and newlines) takes
// the short way; anything else is left to encoding/json.
func appendJSONString(b []byte, str string) []byte {
	for i := 0; i < len(str); i++ {
		c := str[i]
		if c == '\n' {
			continue
		}
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(str)
			if err != nil {
				return append(b, `""`...) // not reached: a string always encodes
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	for {
		i := strings.IndexByte(str, '\n')
		if i < 0 {
			break
		}
		b = append(b, str[:i]...)
		b = append(b, `\n`...)
		str = str[i+1:]
	}
	b = append(b, str...)
	return append(b, '"')
}

// pemText keeps the PEM text of the certificates it last encoded, as a
// JSON string: the chain and the bundle of an answer change only with the
// CA's hierarchy, and the same certificates (compared by pointer) are
// encoded once.
type pemText struct{ last atomic.Pointer[pemEntry] }

type pemEntry struct {
	certs []*x509.Certificate
	json  []byte
}

func (p *pemText) encode(certs []*x509.Certificate) []byte {
	if e := p.last.Load(); e != nil && slices.Equal(e.certs, certs) {
		return e.json
	}
	e := &pemEntry{certs: slices.Clone(certs), json: appendJSONString(nil, string(pemutil.EncodeCertificates(certs...)))}
	p.last.Store(e)
	return e.json
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

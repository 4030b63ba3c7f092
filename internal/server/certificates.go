package server

import (
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// revocationJSON and certJSON turn store records into their wire form.
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

// listCertificates answers GET /v1/certificates (admin), filtered by
// identity, prefix and status.
func (s *Server) listCertificates(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "list certificates", readers)
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
	seen, err := s.o.Store.CertificatesSeen(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]wire.Certificate, len(certs))
	for i, cert := range certs {
		out[i] = certJSON(cert, f.Now)
		if sn, ok := seen[cert.Serial]; ok {
			out[i].LastSeen, out[i].LastSource = sn.LastSeen.UTC(), sn.LastSource
		}
	}
	return http.StatusOK, wire.CertificateList{Certificates: out}, nil
}

// showCertificate answers GET /v1/certificates/{serial} (admin): one record
// with its PEM.
func (s *Server) showCertificate(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "read certificates", readers)
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

func pemEncodeDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

package server

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/wire"
)

// Checkpoints holds the audit log's newest signed checkpoint
// (auditsign.Checkpointer).
type Checkpoints interface {
	Latest() (checkpoint.Signed, bool)
}

// auditCheckpoint answers GET /v1/audit/checkpoint (public): the newest
// signed checkpoint as a signed note.
func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.o.Checkpoints == nil {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "this server signs no audit checkpoints", nil))
		return
	}
	c, ok := s.o.Checkpoints.Latest()
	if !ok {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "no audit checkpoint signed yet", nil))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(c.Note())
}

// auditKey answers GET /v1/audit/key (public): the key checkpoints are
// signed with, PEM.
func (s *Server) auditKey(w http.ResponseWriter, r *http.Request) {
	if len(s.o.AuditKey) != ed25519.PublicKeySize {
		writeError(w, r, s.o.Log, apiError(http.StatusNotFound, wire.CodeNotFound, "this server signs no audit checkpoints", nil))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(checkpoint.MarshalPublicKey(s.o.AuditKey))
}

// auditUnrecorded answers GET /v1/audit/unrecorded (admin, auditor).
func (s *Server) auditUnrecorded(r *http.Request) (int, any, error) {
	if _, err := s.authorize(r, "read the audit log", readers); err != nil {
		return 0, nil, err
	}
	us, err := s.o.Store.Unrecorded(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := wire.Unrecorded{Changes: []wire.UnrecordedChange{}}
	for _, u := range us {
		out.Changes = append(out.Changes, wire.UnrecordedChange{Kind: u.Kind, Serial: u.Serial, Identity: u.Identity, Time: u.Time.UTC(), BeforeSeq: u.BeforeSeq})
	}
	return http.StatusOK, out, nil
}

const maxAuditPage = 5000

// auditRecords answers GET /v1/audit (admin): a page of the audit log after
// a record number.
func (s *Server) auditRecords(r *http.Request) (int, any, error) {
	// Gateways read it too: as witnesses they check that a newer
	// checkpoint chains from the one they remember (auditwitness).
	if _, err := s.authorize(r, "read the audit log", followers); err != nil {
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

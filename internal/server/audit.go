package server

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/certgate/certgate/internal/wire"
)

const maxAuditPage = 5000

// auditRecords answers GET /v1/audit (admin): a page of the audit log after
// a record number.
func (s *Server) auditRecords(r *http.Request) (int, any, error) {
	if _, err := s.authorize(r, "read the audit log", readers); err != nil {
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

package auditcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/wire"
)

// Records reads the audit log (apiclient.Client).
type Records interface {
	AuditRecords(ctx context.Context, after int64, limit int) ([]wire.AuditRecord, error)
}

// Source is what a full verification reads (apiclient.Client with an
// admin's or auditor's certificate).
type Source interface {
	Records
	Unrecorded(ctx context.Context) ([]wire.UnrecordedChange, error)
}

// ErrUnrecorded is wrapped when the store holds a certificate or a
// revocation without its audit record.
var ErrUnrecorded = errors.New("audit: changes without an audit record")

// Report is what a verification found.
type Report struct {
	Records     int64
	Head        []byte
	Checkpoints int // anchors reached and matched
	// Newest is the newest checkpoint checked against, if any.
	Newest     *checkpoint.Checkpoint
	Unrecorded []wire.UnrecordedChange
}

// page is how many records are read at a time.
const page = 5000

// Record turns a record on the wire into an audit.Record.
func Record(r wire.AuditRecord) (audit.Record, error) {
	prev, err1 := hex.DecodeString(r.PrevHash)
	hash, err2 := hex.DecodeString(r.Hash)
	if err := errors.Join(err1, err2); err != nil {
		return audit.Record{}, fmt.Errorf("audit: record %d: bad hash encoding: %w", r.Seq, err)
	}
	return audit.Record{Seq: r.Seq, Entry: audit.Entry{Time: r.Time, Actor: r.Actor, Action: r.Action, Subject: r.Subject, Detail: r.Detail}, PrevHash: prev, Hash: hash}, nil
}

// Verify recomputes the whole chain from src (never trusting the hashes it
// is given), checks it against the signed checkpoints, then asks for the
// certificates and revocations that have no record. The first problem is
// returned: a *audit.ChainError naming the first bad record (changed,
// deleted, the tail truncated below a checkpoint, the chain rewritten), or
// an error wrapping ErrUnrecorded (the report lists them).
func Verify(ctx context.Context, src Source, checkpoints []checkpoint.Signed) (Report, error) {
	var rep Report
	anchors := make([]audit.Anchor, 0, len(checkpoints))
	for _, c := range checkpoints {
		anchors = append(anchors, audit.Anchor{Size: c.Size, Hash: c.Hash, Time: c.Time})
		if rep.Newest == nil || c.Size > rep.Newest.Size {
			cc := c.Checkpoint
			rep.Newest = &cc
		}
	}
	chk, err := audit.NewChecker(anchors)
	if err != nil {
		return rep, err
	}
	for {
		recs, err := src.AuditRecords(ctx, chk.Count(), page)
		if err != nil {
			return rep, err
		}
		for _, w := range recs {
			r, err := Record(w)
			if err != nil {
				return rep, err
			}
			if err := chk.Add(r); err != nil {
				return rep, err
			}
		}
		if len(recs) < page {
			break
		}
	}
	if err := chk.Finish(); err != nil {
		return rep, err
	}
	rep.Records, rep.Head, rep.Checkpoints = chk.Count(), chk.Head(), chk.Matched()
	un, err := src.Unrecorded(ctx)
	if err != nil {
		return rep, err
	}
	if rep.Unrecorded = un; len(un) > 0 {
		return rep, fmt.Errorf("%w: %d (first: %s)", ErrUnrecorded, len(un), Describe(un[0]))
	}
	return rep, nil
}

// Describe says what one unrecorded change is and where its record
// should be.
func Describe(u wire.UnrecordedChange) string {
	what := "issued"
	if u.Kind == "revocation" {
		what = "revoked"
	}
	where := "after the last record"
	if u.BeforeSeq > 0 {
		where = fmt.Sprintf("before record %d", u.BeforeSeq)
	}
	id := ""
	if u.Identity != "" {
		id = " (" + u.Identity + ")"
	}
	return fmt.Sprintf("%s %s%s %s at %s has no audit record (it would be %s)", u.Kind, u.Serial, id, what, u.Time.UTC().Format(time.RFC3339Nano), where)
}

// LoadCheckpoints reads the signed checkpoints at loc, a file (a
// checkpoint file, or a witness's one note) or an https:// URL (a server's
// GET /v1/audit/checkpoint, verified against roots), and verifies each
// with v. One that does not verify is an error: a forged checkpoint is
// tampering too.
func LoadCheckpoints(ctx context.Context, loc string, v *checkpoint.Verifier, roots *x509.CertPool) ([]checkpoint.Signed, error) {
	var data []byte
	var err error
	if strings.HasPrefix(loc, "https://") {
		data, err = fetch(ctx, loc, roots)
	} else {
		data, err = os.ReadFile(loc)
	}
	if err != nil {
		return nil, fmt.Errorf("auditcheck: checkpoint %s: %w", loc, err)
	}
	notes, err := checkpoint.Notes(data)
	if err != nil {
		return nil, fmt.Errorf("auditcheck: checkpoint %s: %w", loc, err)
	}
	if len(notes) == 0 {
		return nil, fmt.Errorf("auditcheck: checkpoint %s: no checkpoint in it", loc)
	}
	out := make([]checkpoint.Signed, 0, len(notes))
	for i, n := range notes {
		s, err := v.Verify(n)
		if err != nil {
			return nil, fmt.Errorf("auditcheck: checkpoint %s, note %d: %w", loc, i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func fetch(ctx context.Context, u string, roots *x509.CertPool) ([]byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlspolicy.Apply(&tls.Config{RootCAs: roots})}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return data, nil
}

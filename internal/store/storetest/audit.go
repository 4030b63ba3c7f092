package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

var auditTests = []subtest{
	{"AppendRoundTrip", func(t *testing.T, e *env) {
		var appended []audit.Record
		for i := range 3 {
			entry := audit.Entry{Time: T0.Add(time.Duration(i) * time.Second), Actor: Admin, Action: audit.ActionAdmin,
				Subject: fmt.Sprintf("thing-%d", i), Detail: `{"n":1}`}
			r, err := e.s.AppendAudit(e.ctx, entry)
			if err != nil {
				t.Fatalf("AppendAudit: %v", err)
			}
			want := audit.Next(last(appended), entry)
			if r.Seq != int64(i+1) || !bytes.Equal(r.Hash, want.Hash) || !bytes.Equal(r.PrevHash, want.PrevHash) {
				t.Errorf("AppendAudit record %d = seq %d, want seq %d linked to the one before", i, r.Seq, i+1)
			}
			appended = append(appended, r)
		}
		recs := e.auditLog()
		if len(recs) != len(appended) {
			t.Fatalf("%d records, want %d", len(recs), len(appended))
		}
		for i := range recs {
			if !recs[i].Time.Equal(appended[i].Time) {
				t.Errorf("record %d time %v, want %v", i, recs[i].Time, appended[i].Time)
			}
			recs[i].Time = appended[i].Time
			if fmt.Sprint(recs[i]) != fmt.Sprint(appended[i]) {
				t.Errorf("record %d = %+v, want %+v", i, recs[i], appended[i])
			}
		}
	}},
	{"Paging", func(t *testing.T, e *env) {
		for i := range 5 {
			if _, err := e.s.AppendAudit(e.ctx, audit.Entry{Time: T0, Actor: Admin, Action: audit.ActionAdmin, Subject: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			after    int64
			limit    int
			from, to int64
		}{{0, 0, 1, 5}, {0, 2, 1, 2}, {2, 2, 3, 4}, {4, 9, 5, 5}, {5, 1, 0, -1}} {
			recs, err := e.s.AuditRecords(e.ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(recs)) != tc.to-tc.from+1 {
				t.Errorf("AuditRecords(%d, %d) returned %d records, want %d..%d", tc.after, tc.limit, len(recs), tc.from, tc.to)
				continue
			}
			for i, r := range recs {
				if r.Seq != tc.from+int64(i) {
					t.Errorf("AuditRecords(%d, %d)[%d].Seq = %d, want %d", tc.after, tc.limit, i, r.Seq, tc.from+int64(i))
				}
			}
		}
		_, err := e.s.AuditRecords(e.ctx, 0, -1)
		wantErr(t, err, nil, "store: audit records: negative limit -1")
	}},
	{"Invalid", func(t *testing.T, e *env) {
		for _, tc := range []struct {
			entry audit.Entry
			error string
		}{
			{audit.Entry{Actor: Admin, Action: audit.ActionAdmin}, "store: append audit record: audit entry time is not set"},
			{audit.Entry{Time: T0, Actor: Admin}, "store: append audit record: audit entry action is empty"},
			{audit.Entry{Time: T0, Action: audit.ActionAdmin}, "store: append audit record: audit entry actor is empty"},
		} {
			_, err := e.s.AppendAudit(e.ctx, tc.entry)
			wantErr(t, err, nil, tc.error)
		}
		if n := len(e.auditLog()); n != 0 {
			t.Errorf("%d records after invalid appends, want 0", n)
		}
	}},
	{"ConcurrentMixedChainVerifies", concurrentMixed},
}

func last(rs []audit.Record) *audit.Record {
	if len(rs) == 0 {
		return nil
	}
	return &rs[len(rs)-1]
}

// concurrentMixed runs every kind of write at once, including failing
// ones, and checks the audit chain verifies and holds exactly one record
// per successful audited change.
func concurrentMixed(t *testing.T, e *env) {
	const workers = 16
	const rounds = 8
	var audited atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				id := fmt.Sprintf("spiffe://example.org/w%d/r%d", w, r)
				tok := NewToken(id, T0, time.Hour)
				if err := e.s.CreateToken(e.ctx, tok, TokenEntry(tok)); err != nil {
					t.Errorf("CreateToken: %v", err)
					return
				}
				audited.Add(1)
				c := NewCertificate(id, T0.Add(time.Minute))
				if err := e.s.RecordIssuance(e.ctx, NewIssuance(c, tok.ID)); err != nil {
					t.Errorf("RecordIssuance: %v", err)
					return
				}
				audited.Add(1)
				// Reuse the token: must fail and leave no record.
				if err := e.s.RecordIssuance(e.ctx, NewIssuance(NewCertificate(id, T0.Add(time.Minute)), tok.ID)); !errors.Is(err, store.ErrTokenUsed) {
					t.Errorf("reused token: %v, want %v", err, store.ErrTokenUsed)
				}
				// Duplicate serial: must fail and leave no record.
				dup := NewCertificate(id, T0)
				dup.Serial = c.Serial
				if err := e.s.RecordIssuance(e.ctx, NewIssuance(dup, "")); !errors.Is(err, store.ErrDuplicateSerial) {
					t.Errorf("duplicate serial: %v, want %v", err, store.ErrDuplicateSerial)
				}
				if _, err := e.s.AppendAudit(e.ctx, audit.Entry{Time: T0, Actor: id, Action: audit.ActionAdmin, Subject: id}); err != nil {
					t.Errorf("AppendAudit: %v", err)
					return
				}
				audited.Add(1)
				if r%2 == 0 {
					revs, err := e.s.Revoke(e.ctx, store.RevokeRequest{Identity: id, Reason: 1, By: Admin, Now: T0.Add(time.Hour)})
					if err != nil || len(revs) != 1 {
						t.Errorf("Revoke: %v, %v; want one revocation", revs, err)
						return
					}
					audited.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	recs := e.auditLog()
	if int64(len(recs)) != audited.Load() {
		t.Errorf("%d audit records, want %d (one per successful change)", len(recs), audited.Load())
	}
	if n, want := len(e.events()), workers*rounds/2; n != want {
		t.Errorf("%d events, want %d", n, want)
	}
}

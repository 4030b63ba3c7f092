package storetest

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

var revokeTests = []subtest{
	{"BySerial", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		now := T0.Add(time.Hour)
		got := e.revoke(store.RevokeRequest{Serial: c.Serial, Reason: 1, By: Admin, Now: now})
		want := store.Revocation{Serial: c.Serial, Reason: 1, RevokedAt: now, RevokedBy: Admin}
		if len(got) != 1 || !got[0].RevokedAt.Equal(now) {
			t.Fatalf("Revoke = %+v, want [%+v]", got, want)
		}
		got[0].RevokedAt = now
		if got[0] != want {
			t.Errorf("Revoke = %+v, want %+v", got[0], want)
		}
		gc, err := e.s.GetCertificate(e.ctx, c.Serial)
		if err != nil {
			t.Fatal(err)
		}
		c.Revocation = &want
		equalCert(t, gc, c)

		evs := e.events()
		wantEv := store.Event{Position: 1, Time: now, Kind: store.EventRevoke, Serial: c.Serial, Identity: c.Identity, Reason: 1, NotAfter: c.NotAfter, Issuer: c.Issuer}
		if len(evs) != 1 || !evs[0].Time.Equal(now) || !evs[0].NotAfter.Equal(c.NotAfter) {
			t.Fatalf("events = %+v, want [%+v]", evs, wantEv)
		}
		evs[0].Time, evs[0].NotAfter = now, c.NotAfter
		if evs[0] != wantEv {
			t.Errorf("event = %+v, want %+v", evs[0], wantEv)
		}
		recs := e.auditLog()
		wantAudit := audit.Entry{Time: now, Actor: Admin, Action: audit.ActionRevoke, Subject: c.Serial,
			Detail: `{"identity":"spiffe://example.org/svc/a","reason":1}`}
		if len(recs) != 2 || !recs[1].Time.Equal(now) {
			t.Fatalf("audit = %+v, want issue then %+v", recs, wantAudit)
		}
		recs[1].Time = now
		if recs[1].Entry != wantAudit {
			t.Errorf("revoke audit = %+v, want %+v", recs[1].Entry, wantAudit)
		}
	}},
	{"AlreadyRevoked", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		e.revoke(store.RevokeRequest{Serial: c.Serial, Reason: 1})
		again := e.revoke(store.RevokeRequest{Serial: c.Serial, Reason: 4, Now: T0.Add(2 * time.Hour)})
		if again == nil || len(again) != 0 {
			t.Errorf("second Revoke = %#v, want an empty non-nil slice", again)
		}
		gc, _ := e.s.GetCertificate(e.ctx, c.Serial)
		if gc.Revocation == nil || gc.Revocation.Reason != 1 {
			t.Errorf("revocation = %+v, want the first (reason 1) kept", gc.Revocation)
		}
		if n := len(e.events()); n != 1 {
			t.Errorf("%d events, want 1", n)
		}
	}},
	{"UnknownSerial", func(t *testing.T, e *env) {
		_, err := e.s.Revoke(e.ctx, store.RevokeRequest{Serial: "abc", Reason: 0, By: Admin, Now: T0})
		wantErr(t, err, store.ErrNotFound, "store: revoke abc: certificate not found")
		if n := len(e.auditLog()); n != 0 {
			t.Errorf("%d audit records, want 0", n)
		}
	}},
	{"ExpiredBySerial", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		if got := e.revoke(store.RevokeRequest{Serial: c.Serial, Now: c.NotAfter.Add(time.Hour)}); len(got) != 1 {
			t.Errorf("revoking an expired certificate by serial revoked %d, want 1", len(got))
		}
	}},
	{"ByIdentity", func(t *testing.T, e *env) {
		id := "spiffe://example.org/host/a"
		old := e.issue(id, T0.Add(-48*time.Hour)) // expired at T0+1h
		c1 := e.issue(id, T0)
		c2 := e.issue(id, T0.Add(time.Minute))
		done := e.issue(id, T0.Add(2*time.Minute))
		e.revoke(store.RevokeRequest{Serial: done.Serial, Reason: 4})
		other := e.issue(id+"b", T0)
		child := e.issue(id+"/x", T0)
		got := e.revoke(store.RevokeRequest{Identity: id, Reason: 1})
		wantSerials(t, got, c1.Serial, c2.Serial)
		for _, s := range []string{old.Serial, other.Serial, child.Serial} {
			if gc, _ := e.s.GetCertificate(e.ctx, s); gc.Revocation != nil {
				t.Errorf("%s (%s) revoked by identity %s", s, gc.Identity, id)
			}
		}
		if n := len(e.events()); n != 3 {
			t.Errorf("%d events, want 3", n)
		}
		if n := len(e.auditLog()); n != 6+3 {
			t.Errorf("%d audit records, want 9", n)
		}
	}},
	{"ByIdentityPrefix", func(t *testing.T, e *env) {
		a := e.issue("spiffe://example.org/host/a", T0)
		ab := e.issue("spiffe://example.org/host/ab", T0)
		a1 := e.issue("spiffe://example.org/host/a/1", T0)
		a12 := e.issue("spiffe://example.org/host/a/1/2", T0)
		b := e.issue("spiffe://example.org/host/b", T0)
		got := e.revoke(store.RevokeRequest{IdentityPrefix: "spiffe://example.org/host/a"})
		wantSerials(t, got, a.Serial, a1.Serial, a12.Serial)
		for _, c := range []store.Certificate{ab, b} {
			if gc, _ := e.s.GetCertificate(e.ctx, c.Serial); gc.Revocation != nil {
				t.Errorf("%s revoked by prefix spiffe://example.org/host/a", gc.Identity)
			}
		}
	}},
	{"WildcardCharacters", func(t *testing.T, e *env) {
		pct := e.issue("spiffe://example.org/x%25", T0)
		pctChild := e.issue("spiffe://example.org/x%25/1", T0)
		xy := e.issue("spiffe://example.org/xy/1", T0)
		under := e.issue("spiffe://example.org/a_c", T0)
		abc := e.issue("spiffe://example.org/abc/1", T0)
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"spiffe://example.org/x%", nil},
			{"spiffe://example.org/x%25", []string{pct.Serial, pctChild.Serial}},
			{"spiffe://example.org/a_c", []string{under.Serial}},
			{"spiffe://example.org/a%", nil},
			{"spiffe://example.org/_", nil},
		} {
			got := e.revoke(store.RevokeRequest{IdentityPrefix: tc.prefix})
			wantSerials(t, got, tc.want...)
		}
		got := e.revoke(store.RevokeRequest{Identity: "spiffe://example.org/a%"})
		wantSerials(t, got)
		for _, c := range []store.Certificate{xy, abc} {
			if gc, _ := e.s.GetCertificate(e.ctx, c.Serial); gc.Revocation != nil {
				t.Errorf("%s revoked by a wildcard-looking prefix", gc.Identity)
			}
		}
	}},
	{"MatchesNothing", func(t *testing.T, e *env) {
		e.issue("spiffe://example.org/svc/a", T0)
		for _, req := range []store.RevokeRequest{{Identity: "spiffe://example.org/svc/b"}, {IdentityPrefix: "spiffe://example.org/svc/a/"}} {
			got := e.revoke(req)
			if got == nil || len(got) != 0 {
				t.Errorf("Revoke(%+v) = %#v, want an empty non-nil slice", req, got)
			}
		}
		if n := len(e.events()); n != 0 {
			t.Errorf("%d events, want 0", n)
		}
	}},
	{"Invalid", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		for _, tc := range []struct {
			req   store.RevokeRequest
			error string
		}{
			{store.RevokeRequest{By: Admin, Now: T0}, "store: revoke: exactly one of serial, identity and identity prefix must be set"},
			{store.RevokeRequest{Serial: c.Serial, Identity: c.Identity, By: Admin, Now: T0}, "store: revoke: exactly one of serial, identity and identity prefix must be set"},
			{store.RevokeRequest{Serial: c.Serial, Reason: 7, By: Admin, Now: T0}, "store: revoke " + c.Serial + ": reason code 7 is not an RFC 5280 CRLReason"},
			{store.RevokeRequest{Serial: c.Serial, Reason: 11, By: Admin, Now: T0}, "store: revoke " + c.Serial + ": reason code 11 is not an RFC 5280 CRLReason"},
			{store.RevokeRequest{Identity: c.Identity, Reason: -1, By: Admin, Now: T0}, "store: revoke identity " + c.Identity + ": reason code -1 is not an RFC 5280 CRLReason"},
			{store.RevokeRequest{IdentityPrefix: c.Identity, Now: T0}, "store: revoke identity prefix " + c.Identity + ": revoked by is empty"},
			{store.RevokeRequest{Serial: c.Serial, By: Admin}, "store: revoke " + c.Serial + ": now is not set"},
		} {
			_, err := e.s.Revoke(e.ctx, tc.req)
			wantErr(t, err, nil, tc.error)
		}
		if n := len(e.events()); n != 0 {
			t.Errorf("%d events after invalid revocations, want 0", n)
		}
	}},
	{"ConcurrentSameSerial", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		const n = 10
		results := make([][]store.Revocation, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := store.RevokeRequest{Serial: c.Serial, Reason: 1, By: fmt.Sprintf("admin-%d", i), Now: T0.Add(time.Hour)}
				results[i], errs[i] = e.s.Revoke(e.ctx, req)
			}()
		}
		wg.Wait()
		revoked := 0
		for i := range n {
			if errs[i] != nil {
				t.Errorf("Revoke %d: %v", i, errs[i])
			}
			revoked += len(results[i])
		}
		if revoked != 1 {
			t.Errorf("%d revocations returned, want exactly 1", revoked)
		}
		if n := len(e.events()); n != 1 {
			t.Errorf("%d events, want 1", n)
		}
		if n := len(e.auditLog()); n != 2 {
			t.Errorf("%d audit records, want 2", n)
		}
	}},
}

// wantSerials checks the revocations are exactly of serials, in any order.
func wantSerials(t *testing.T, got []store.Revocation, serials ...string) {
	t.Helper()
	var have []string
	for _, r := range got {
		have = append(have, r.Serial)
	}
	want := append([]string(nil), serials...)
	sort.Strings(have)
	sort.Strings(want)
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("revoked %v, want %v", have, want)
	}
}

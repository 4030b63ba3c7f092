package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

var listTests = []subtest{
	{"Filters", func(t *testing.T, e *env) {
		now := T0.Add(time.Hour)
		expired := e.issue("spiffe://example.org/host/a", T0.Add(-48*time.Hour))
		valid := e.issue("spiffe://example.org/host/a", T0)
		revoked := e.issue("spiffe://example.org/host/a/1", T0.Add(time.Second))
		child := e.issue("spiffe://example.org/host/a/2", T0.Add(2*time.Second))
		ab := e.issue("spiffe://example.org/host/ab", T0.Add(3*time.Second))
		other := e.issue("spiffe://example.org/svc/b", T0.Add(4*time.Second))
		e.revoke(store.RevokeRequest{Serial: revoked.Serial, Now: now})
		for _, tc := range []struct {
			name string
			f    store.CertFilter
			want []store.Certificate
		}{
			{"all", store.CertFilter{}, []store.Certificate{expired, valid, revoked, child, ab, other}},
			{"identity", store.CertFilter{Identity: "spiffe://example.org/host/a"}, []store.Certificate{expired, valid}},
			{"prefix", store.CertFilter{IdentityPrefix: "spiffe://example.org/host/a"}, []store.Certificate{expired, valid, revoked, child}},
			{"valid", store.CertFilter{Status: store.StatusValid, Now: now}, []store.Certificate{valid, child, ab, other}},
			{"revoked", store.CertFilter{Status: store.StatusRevoked}, []store.Certificate{revoked}},
			{"expired", store.CertFilter{Status: store.StatusExpired, Now: now}, []store.Certificate{expired}},
			{"prefix and valid", store.CertFilter{IdentityPrefix: "spiffe://example.org/host/a", Status: store.StatusValid, Now: now}, []store.Certificate{valid, child}},
			{"limit", store.CertFilter{Limit: 2}, []store.Certificate{expired, valid}},
			{"nothing", store.CertFilter{Identity: "spiffe://example.org/none"}, nil},
		} {
			got, err := e.s.ListCertificates(e.ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got == nil {
				t.Errorf("%s: nil slice, want an empty non-nil slice", tc.name)
			}
			if serials(got) != serials(tc.want) {
				t.Errorf("%s: %s\nwant %s", tc.name, serials(got), serials(tc.want))
			}
			for _, c := range got {
				if (c.Revocation != nil) != (c.Serial == revoked.Serial) {
					t.Errorf("%s: %s revocation = %+v", tc.name, c.Serial, c.Revocation)
				}
			}
		}
		got, _ := e.s.ListCertificates(e.ctx, store.CertFilter{Identity: valid.Identity, Status: store.StatusValid, Now: now})
		if len(got) == 1 {
			equalCert(t, got[0], valid)
		}
	}},
	{"OrderedByIssuedAtThenSerial", func(t *testing.T, e *env) {
		var want []store.Certificate
		for i := range 6 {
			want = append(want, e.issue(identity(i), T0.Add(time.Duration(i/3)*time.Second)))
		}
		sort.SliceStable(want, func(i, j int) bool {
			if !want[i].IssuedAt.Equal(want[j].IssuedAt) {
				return want[i].IssuedAt.Before(want[j].IssuedAt)
			}
			return want[i].Serial < want[j].Serial
		})
		got, err := e.s.ListCertificates(e.ctx, store.CertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if serials(got) != serials(want) {
			t.Errorf("order %s\nwant  %s", serials(got), serials(want))
		}
	}},
	{"Invalid", func(t *testing.T, e *env) {
		for _, tc := range []struct {
			f     store.CertFilter
			error string
		}{
			{store.CertFilter{Status: "gone"}, `store: list certificates: unknown status "gone" (want valid, revoked or expired)`},
			{store.CertFilter{Status: store.StatusValid}, `store: list certificates: status "valid": now is not set`},
			{store.CertFilter{Limit: -1}, "store: list certificates: negative limit -1"},
		} {
			_, err := e.s.ListCertificates(e.ctx, tc.f)
			wantErr(t, err, nil, tc.error)
		}
	}},
}

func serials(cs []store.Certificate) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Serial[:6])
	}
	return fmt.Sprint(s)
}

var lifecycleTests = []subtest{
	{"Ping", func(t *testing.T, e *env) {
		if err := e.s.Ping(e.ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}},
	{"Close", func(t *testing.T, e *env) {
		c := e.issue("spiffe://example.org/svc/a", T0)
		if err := e.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := e.s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		ctx := context.Background()
		tok := NewToken("spiffe://example.org/svc/a", T0, time.Minute)
		_, revokeErr := e.s.Revoke(ctx, store.RevokeRequest{Serial: c.Serial, By: Admin, Now: T0})
		_, getErr := e.s.GetCertificate(ctx, c.Serial)
		_, appendErr := e.s.AppendAudit(ctx, audit.Entry{Time: T0, Actor: Admin, Action: audit.ActionAdmin})
		_, eventsErr := e.s.Events(ctx, 0, 0)
		for name, err := range map[string]error{
			"RecordIssuance": e.s.RecordIssuance(ctx, NewIssuance(NewCertificate("spiffe://example.org/svc/a", T0), "")),
			"CreateToken":    e.s.CreateToken(ctx, tok, TokenEntry(tok)),
			"Revoke":         revokeErr,
			"GetCertificate": getErr,
			"AppendAudit":    appendErr,
			"Events":         eventsErr,
			"Ping":           e.s.Ping(ctx),
		} {
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s after Close: %v, want %v", name, err, store.ErrUnavailable)
			}
		}
	}},
}

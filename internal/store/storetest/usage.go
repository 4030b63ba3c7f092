package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

// Gateway is the actor of the suite's usage reports.
const Gateway = "spiffe://example.org/gateway/gw1"

const (
	alice = "spiffe://example.org/svc/alice"
	bob   = "spiffe://example.org/svc/bob"
)

func usageRow(id, serial, route string, at time.Time, ok, notFound int64, source string) store.UsageRow {
	r := store.UsageRow{Identity: id, Serial: serial, Route: route, Day: at.UTC().Format(time.DateOnly),
		BytesIn: 10 * (ok + notFound), BytesOut: 100 * ok, LastSeen: at, Source: source}
	r.Requests[2], r.Requests[4] = ok, notFound
	return r
}

var usageTests = []subtest{
	{"CountsAddUp", func(t *testing.T, e *env) {
		r1 := store.UsageReport{ID: "r1", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{
			usageRow(alice, "a1", "api", T0, 3, 1, "10.0.0.1"),
			usageRow(alice, "a1", "admin", T0.Add(time.Second), 1, 0, "10.0.0.2"),
			usageRow(bob, "b1", "api", T0, 5, 0, "10.0.0.3"),
		}}
		r2 := store.UsageReport{ID: "r2", Gateway: Gateway, Received: T0.Add(5 * time.Second), Rows: []store.UsageRow{
			usageRow(alice, "a2", "api", T0.Add(4*time.Second), 2, 2, "10.0.0.4"),
		}}
		for _, r := range []store.UsageReport{r1, r2} {
			if dup, err := e.s.RecordUsage(e.ctx, r); err != nil || dup {
				t.Fatalf("RecordUsage(%s) = %v, %v; want false, nil", r.ID, dup, err)
			}
		}
		days, err := e.s.UsageDays(e.ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		day := T0.Format(time.DateOnly)
		want := []store.UsageRow{
			{Identity: alice, Route: "admin", Day: day, Requests: [6]int64{0, 0, 1, 0, 0, 0}, BytesIn: 10, BytesOut: 100, LastSeen: T0.Add(time.Second)},
			{Identity: alice, Route: "api", Day: day, Requests: [6]int64{0, 0, 5, 0, 3, 0}, BytesIn: 80, BytesOut: 500, LastSeen: T0.Add(4 * time.Second)},
			{Identity: bob, Route: "api", Day: day, Requests: [6]int64{0, 0, 5, 0, 0, 0}, BytesIn: 50, BytesOut: 500, LastSeen: T0},
		}
		if !reflect.DeepEqual(days, want) {
			t.Errorf("UsageDays =\n%+v\nwant\n%+v", days, want)
		}
		ids, err := e.s.IdentitiesSeen(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs := []store.Seen{
			{Identity: alice, LastSeen: T0.Add(4 * time.Second), LastSource: "10.0.0.4", LastRoute: "api", Requests: 9},
			{Identity: bob, LastSeen: T0, LastSource: "10.0.0.3", LastRoute: "api", Requests: 5},
		}
		if !reflect.DeepEqual(ids, wantIDs) {
			t.Errorf("IdentitiesSeen =\n%+v\nwant\n%+v", ids, wantIDs)
		}
		certs, err := e.s.CertificatesSeen(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantCerts := map[string]store.Seen{
			"a1": {Identity: alice, Serial: "a1", LastSeen: T0.Add(time.Second), LastSource: "10.0.0.2", Requests: 5},
			"a2": {Identity: alice, Serial: "a2", LastSeen: T0.Add(4 * time.Second), LastSource: "10.0.0.4", Requests: 4},
			"b1": {Identity: bob, Serial: "b1", LastSeen: T0, LastSource: "10.0.0.3", Requests: 5},
		}
		if !reflect.DeepEqual(certs, wantCerts) {
			t.Errorf("CertificatesSeen =\n%+v\nwant\n%+v", certs, wantCerts)
		}
		aliceOnly, err := e.s.UsageDays(e.ctx, bob, day)
		if err != nil || len(aliceOnly) != 1 || aliceOnly[0].Identity != bob {
			t.Errorf("UsageDays(bob, %s) = %+v, %v; want bob's one row", day, aliceOnly, err)
		}
		if later, err := e.s.UsageDays(e.ctx, "", T0.Add(24*time.Hour).Format(time.DateOnly)); err != nil || len(later) != 0 {
			t.Errorf("UsageDays from the next day = %+v, %v; want none", later, err)
		}
	}},
	{"RetriedReportCountedOnce", func(t *testing.T, e *env) {
		r := store.UsageReport{ID: "same", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{usageRow(alice, "a1", "api", T0, 7, 0, "10.0.0.1")}}
		if dup, err := e.s.RecordUsage(e.ctx, r); err != nil || dup {
			t.Fatalf("first RecordUsage = %v, %v", dup, err)
		}
		r.Received = T0.Add(time.Minute)
		if dup, err := e.s.RecordUsage(e.ctx, r); err != nil || !dup {
			t.Fatalf("retried RecordUsage = %v, %v; want true, nil", dup, err)
		}
		ids, err := e.s.IdentitiesSeen(e.ctx)
		if err != nil || len(ids) != 1 || ids[0].Requests != 7 {
			t.Errorf("IdentitiesSeen = %+v, %v; want alice with 7 requests", ids, err)
		}
	}},
	{"LastSeenOnlyMovesForward", func(t *testing.T, e *env) {
		// Two gateways report out of order: the older report arrives last.
		newer := store.UsageReport{ID: "n", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{usageRow(alice, "a1", "api", T0.Add(time.Minute), 1, 0, "10.0.0.9")}}
		older := store.UsageReport{ID: "o", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{usageRow(alice, "a1", "api", T0, 1, 0, "10.0.0.1")}}
		for _, r := range []store.UsageReport{newer, older} {
			if _, err := e.s.RecordUsage(e.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		ids, _ := e.s.IdentitiesSeen(e.ctx)
		certs, _ := e.s.CertificatesSeen(e.ctx)
		days, _ := e.s.UsageDays(e.ctx, alice, "")
		if len(ids) != 1 || !ids[0].LastSeen.Equal(T0.Add(time.Minute)) || ids[0].LastSource != "10.0.0.9" || ids[0].Requests != 2 {
			t.Errorf("IdentitiesSeen = %+v; want last seen %v from 10.0.0.9, 2 requests", ids, T0.Add(time.Minute))
		}
		if c := certs["a1"]; !c.LastSeen.Equal(T0.Add(time.Minute)) || c.LastSource != "10.0.0.9" {
			t.Errorf("CertificatesSeen[a1] = %+v; want the newer use", c)
		}
		if len(days) != 1 || !days[0].LastSeen.Equal(T0.Add(time.Minute)) {
			t.Errorf("UsageDays = %+v; want the newer last seen", days)
		}
	}},
	{"SharingAudited", func(t *testing.T, e *env) {
		sh := store.Sharing{Identity: alice, Serial: "a1", Sources: []string{"127.0.0.1", "127.0.0.2"}, Window: time.Minute, Time: T0.Add(time.Second)}
		r := store.UsageReport{ID: "s", Gateway: Gateway, Received: T0, Sharing: []store.Sharing{sh}}
		if _, err := e.s.RecordUsage(e.ctx, r); err != nil {
			t.Fatal(err)
		}
		recs := e.auditLog()
		if len(recs) != 1 {
			t.Fatalf("%d audit records, want 1", len(recs))
		}
		got := recs[0]
		wantDetail := `{"identity":"spiffe://example.org/svc/alice","sources":["127.0.0.1","127.0.0.2"],"window":"1m0s"}`
		if got.Action != audit.ActionSharingSuspected || got.Actor != Gateway || got.Subject != "a1" || got.Detail != wantDetail || !got.Time.Equal(sh.Time) {
			t.Errorf("audit record = %+v; want %s by %s about a1 with %s", got, audit.ActionSharingSuspected, Gateway, wantDetail)
		}
		ids, _ := e.s.IdentitiesSeen(e.ctx)
		if len(ids) != 1 || !ids[0].SharingAt.Equal(sh.Time) {
			t.Errorf("IdentitiesSeen = %+v; want alice flagged at %v", ids, sh.Time)
		}
		// A retry of the same report records nothing again.
		if dup, err := e.s.RecordUsage(e.ctx, r); err != nil || !dup {
			t.Fatalf("retried RecordUsage = %v, %v", dup, err)
		}
		if n := len(e.auditLog()); n != 1 {
			t.Errorf("%d audit records after a retry, want 1", n)
		}
	}},
	{"BadReportChangesNothing", func(t *testing.T, e *env) {
		good := usageRow(alice, "a1", "api", T0, 1, 0, "10.0.0.1")
		for _, tc := range []struct {
			name string
			mod  func(*store.UsageReport)
			want string
		}{
			{"no ID", func(r *store.UsageReport) { r.ID = "" }, "report ID is empty"},
			{"no gateway", func(r *store.UsageReport) { r.Gateway = "" }, "report gateway is empty"},
			{"no identity", func(r *store.UsageReport) { r.Rows[1].Identity = "" }, "row 1: identity is empty"},
			{"bad day", func(r *store.UsageReport) { r.Rows[1].Day = "2030-13-01" }, `row 1: day "2030-13-01" is not YYYY-MM-DD`},
			{"negative count", func(r *store.UsageReport) { r.Rows[1].Requests[3] = -1 }, "row 1: negative request count"},
			{"negative bytes", func(r *store.UsageReport) { r.Rows[1].BytesOut = -1 }, "row 1: negative byte count"},
			{"no last seen", func(r *store.UsageReport) { r.Rows[1].LastSeen = time.Time{} }, "row 1: last seen is not set"},
			{"sharing without serial", func(r *store.UsageReport) { r.Sharing = []store.Sharing{{Identity: alice, Time: T0}} }, "sharing 0: identity or serial is empty"},
		} {
			r := store.UsageReport{ID: "bad", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{good, good}}
			tc.mod(&r)
			_, err := e.s.RecordUsage(e.ctx, r)
			want := fmt.Sprintf("store: record usage report %s: %s", r.ID, tc.want)
			if err == nil || err.Error() != want {
				t.Errorf("%s: RecordUsage error = %v, want %q", tc.name, err, want)
			}
		}
		ids, err := e.s.IdentitiesSeen(e.ctx)
		if err != nil || len(ids) != 0 {
			t.Errorf("IdentitiesSeen after bad reports = %+v, %v; want none", ids, err)
		}
		// The ID of a refused report is free: nothing was recorded.
		if dup, err := e.s.RecordUsage(e.ctx, store.UsageReport{ID: "bad", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{good}}); err != nil || dup {
			t.Errorf("RecordUsage after refusals = %v, %v; want recorded", dup, err)
		}
		if n := len(e.auditLog()); n != 0 {
			t.Errorf("%d audit records after bad reports, want 0", n)
		}
	}},
}

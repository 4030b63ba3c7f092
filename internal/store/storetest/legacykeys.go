package storetest

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

const legacyBilling = "spiffe://example.org/legacy/billing"

func legacyKey(name string, sunset time.Time) store.LegacyKey {
	h := sha256.Sum256([]byte("hash of " + name))
	return store.LegacyKey{Name: name, Identity: "spiffe://example.org/legacy/" + name, Hash: h[:], CreatedBy: Admin, CreatedAt: T0, Sunset: sunset}
}

var legacyKeyTests = []subtest{
	{"SaltMadeOnce", func(t *testing.T, e *env) {
		a, err := e.s.LegacyKeySalt(e.ctx, T0)
		if err != nil || len(a) != 32 {
			t.Fatalf("LegacyKeySalt = %x, %v; want 32 bytes", a, err)
		}
		b, err := e.s.LegacyKeySalt(e.ctx, T0.Add(time.Hour))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("second LegacyKeySalt = %x, %v; want the first, %x", b, err, a)
		}
	}},
	{"ImportRevokeExtend", func(t *testing.T, e *env) {
		sunset := T0.Add(90 * 24 * time.Hour)
		billing, reports := legacyKey("billing", sunset), legacyKey("reports", sunset)
		if err := e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{billing, reports}); err != nil {
			t.Fatal(err)
		}
		later := sunset.Add(30 * 24 * time.Hour)
		if err := e.s.ExtendLegacyKey(e.ctx, "billing", later, Admin, T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := e.s.RevokeLegacyKey(e.ctx, "reports", "leaked", Admin, T0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		keys, err := e.s.LegacyKeys(e.ctx)
		if err != nil || len(keys) != 2 {
			t.Fatalf("LegacyKeys = %+v, %v", keys, err)
		}
		if k := keys[0]; k.Name != "billing" || !k.Sunset.Equal(later) || !k.RevokedAt.IsZero() || !bytes.Equal(k.Hash, billing.Hash) || !k.CreatedAt.Equal(T0) {
			t.Errorf("billing = %+v", k)
		}
		if k := keys[1]; k.Name != "reports" || !k.RevokedAt.Equal(T0.Add(2*time.Minute)) || k.RevokedBy != Admin || k.RevokeReason != "leaked" {
			t.Errorf("reports = %+v", k)
		}
		want := []audit.Entry{
			{Time: T0, Actor: Admin, Action: audit.ActionLegacyKeyImport, Subject: legacyBilling, Detail: `{"name":"billing","sunset":"2030-04-02T03:04:05.123456789Z"}`},
			{Time: T0, Actor: Admin, Action: audit.ActionLegacyKeyImport, Subject: "spiffe://example.org/legacy/reports", Detail: `{"name":"reports","sunset":"2030-04-02T03:04:05.123456789Z"}`},
			{Time: T0.Add(time.Minute), Actor: Admin, Action: audit.ActionLegacyKeyExtend, Subject: legacyBilling, Detail: `{"name":"billing","sunset":"2030-05-02T03:04:05.123456789Z","previous_sunset":"2030-04-02T03:04:05.123456789Z"}`},
			{Time: T0.Add(2 * time.Minute), Actor: Admin, Action: audit.ActionLegacyKeyRevoke, Subject: "spiffe://example.org/legacy/reports", Detail: `{"name":"reports","reason":"leaked"}`},
		}
		recs := e.auditLog()
		if len(recs) != len(want) {
			t.Fatalf("%d audit records, want %d", len(recs), len(want))
		}
		for i := range want {
			if recs[i].Entry != want[i] {
				t.Errorf("audit %d = %+v\n want %+v", i, recs[i].Entry, want[i])
			}
		}
		evs := e.events()
		if len(evs) != 3 {
			t.Fatalf("events = %+v, want one per change (3)", evs)
		}
		for _, ev := range evs {
			if ev.Kind != store.EventLegacyKey {
				t.Errorf("event %+v, want kind %s", ev, store.EventLegacyKey)
			}
		}
	}},
	{"Refusals", func(t *testing.T, e *env) {
		sunset := T0.Add(time.Hour)
		if err := e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{legacyKey("billing", sunset)}); err != nil {
			t.Fatal(err)
		}
		// A batch with one known name imports nothing, the new key neither.
		wantErr(t, e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{legacyKey("new", sunset), legacyKey("billing", sunset)}), store.ErrLegacyKeyExists,
			`store: import 2 legacy keys: key "billing": legacy key exists already (by its name or its key)`)
		sameHash := legacyKey("other", sunset)
		sameHash.Hash = legacyKey("billing", sunset).Hash
		wantErr(t, e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{sameHash}), store.ErrLegacyKeyExists,
			`store: import 1 legacy keys: key "other": legacy key exists already (by its name or its key)`)
		short := legacyKey("short", sunset)
		short.Hash = short.Hash[:16]
		wantErr(t, e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{short}), nil, `store: import 1 legacy keys: key "short": hash is 16 bytes, want 32`)
		wantErr(t, e.s.RevokeLegacyKey(e.ctx, "nobody", "", Admin, T0), store.ErrNotFound, "store: revoke legacy key nobody: not found")
		if err := e.s.RevokeLegacyKey(e.ctx, "billing", "", Admin, T0); err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.s.ExtendLegacyKey(e.ctx, "billing", sunset.Add(time.Hour), Admin, T0), store.ErrLegacyKeyRevoked,
			"store: extend legacy key billing: legacy key is revoked (at 2030-01-02T03:04:05.123456789Z)")
		keys, err := e.s.LegacyKeys(e.ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("LegacyKeys = %+v, %v; want billing only", keys, err)
		}
		if n := len(e.auditLog()); n != 2 {
			t.Errorf("%d audit records, want 2 (refusals are not recorded)", n)
		}
	}},
	{"UsageAndMigration", func(t *testing.T, e *env) {
		if err := e.s.ImportLegacyKeys(e.ctx, []store.LegacyKey{legacyKey("billing", T0.Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
		if err := e.s.MarkLegacyKeyMigration(e.ctx, "billing", "tok1", time.Minute, Admin, T0); err != nil {
			t.Fatal(err)
		}
		r1 := store.UsageReport{ID: "r1", Gateway: Gateway, Received: T0, Rows: []store.UsageRow{
			usageRow(legacyBilling, "legacy-key:billing", "api", T0, 3, 1, "10.0.0.1"),
			usageRow(legacyBilling, "legacy-key:billing", "pay", T0.Add(time.Second), 1, 0, "10.0.0.2"),
		}}
		r2 := store.UsageReport{ID: "r2", Gateway: Gateway, Received: T0.Add(10 * time.Second), Rows: []store.UsageRow{
			usageRow(legacyBilling, "a1", "api", T0.Add(10*time.Second), 2, 0, "10.0.0.1"),
		}}
		for _, r := range []store.UsageReport{r1, r2} {
			if _, err := e.s.RecordUsage(e.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := e.s.LegacyKeys(e.ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("LegacyKeys = %+v, %v", keys, err)
		}
		k := keys[0]
		u := k.Usage
		if u.Requests != 5 || !u.LastSeen.Equal(T0.Add(time.Second)) || len(u.Routes) != 2 || u.Routes[0] != "api" || len(u.Sources) != 2 ||
			u.CertRequests != 2 || !u.CertLastSeen.Equal(T0.Add(10*time.Second)) {
			t.Errorf("usage = %+v", u)
		}
		if k.MigrateToken != "tok1" || k.AutoRevokeGrace != time.Minute || !k.CertFirstSeen.Equal(T0.Add(10*time.Second)) {
			t.Errorf("migration = %+v", k)
		}
		if got, err := e.s.RevokeMigratedLegacyKeys(e.ctx, T0.Add(69*time.Second)); err != nil || len(got) != 0 {
			t.Fatalf("before the grace: %v, %v; want nothing", got, err)
		}
		if got, err := e.s.RevokeMigratedLegacyKeys(e.ctx, T0.Add(70*time.Second)); err != nil || len(got) != 1 || got[0] != "billing" {
			t.Fatalf("after the grace: %v, %v; want billing", got, err)
		}
		recs := e.auditLog()
		last := recs[len(recs)-1].Entry
		want := audit.Entry{Time: T0.Add(70 * time.Second), Actor: store.ActorLegacyKeyMigration, Action: audit.ActionLegacyKeyRevoke, Subject: legacyBilling,
			Detail: `{"name":"billing","reason":"migrated: a certificate of spiffe://example.org/legacy/billing was first used at 2030-01-02T03:04:15.123456789Z; the grace of 1m0s has passed"}`}
		if last != want {
			t.Errorf("audit = %+v\nwant %+v", last, want)
		}
		if got, err := e.s.RevokeMigratedLegacyKeys(e.ctx, T0.Add(time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("again: %v, %v; want nothing", got, err)
		}
	}},
}

package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// TestMigrationGrantsLegacyRoles makes a store of schema version 2 (before
// roles) with an admin, a gateway and a client, migrates it, and checks that
// the prefixes those identities relied on are granted explicitly, each with
// an audit record that says so, and that the audit chain still verifies.
func TestMigrationGrantsLegacyRoles(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testLegacyGrants(t, db, sqliteDialect{})
	})
	t.Run("postgres", func(t *testing.T) {
		db := testPostgresDB(t)
		testLegacyGrants(t, db, postgresDialect{})
	})
}

func testLegacyGrants(t *testing.T, db *sql.DB, d dialect) {
	ctx := context.Background()
	ms, err := loadMigrations(d.name())
	if err != nil {
		t.Fatal(err)
	}
	// Version 3, as an older certgate left it.
	for _, m := range ms[:3] {
		if _, _, err := migrateStep(ctx, db, d, ms[:m.version]); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var prev *audit.Record
	for i, id := range []string{"spiffe://example.org/admin/alice", "spiffe://example.org/gateway/gw1", "spiffe://example.org/svc/a"} {
		if _, err := db.ExecContext(ctx, d.bind(`INSERT INTO certificates (serial, identity, common_name, fingerprint, not_before, not_after, key_type, obtained, renewed_from, token_id, issued_at, der, issuer)
			VALUES (?, ?, '', ?, 0, 1, 'ecdsa-p256', 'enroll', '', '', 0, ?, '')`), string(rune('a'+i)), id, string(rune('a'+i)), []byte{1}); err != nil {
			t.Fatal(err)
		}
		r := audit.Next(prev, audit.Entry{Time: t0, Actor: "x", Action: audit.ActionIssue, Subject: id})
		if _, err := db.ExecContext(ctx, d.bind(`INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			r.Seq, r.Time.UnixNano(), r.Actor, r.Action, r.Subject, r.Detail, r.PrevHash, r.Hash); err != nil {
			t.Fatal(err)
		}
		prev = &r
	}
	from, to, err := migrate(ctx, db, d)
	if err != nil || from != 3 || to != len(ms) {
		t.Fatalf("migrate: %d -> %d, %v", from, to, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT role, holder, granted_by FROM role_grants ORDER BY role`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var r, h, by string
		rows.Scan(&r, &h, &by)
		got = append(got, r+" "+h+" "+by)
	}
	rows.Close()
	want := []string{"admin spiffe://example.org/admin/* system:migration", "gateway spiffe://example.org/gateway/* system:migration"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("grants:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	recs, err := queryAudit(ctx, db, `SELECT `+auditColumns+` FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var v audit.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			t.Fatalf("audit chain after the migration: %v", err)
		}
	}
	if len(recs) != 5 || recs[3].Action != audit.ActionRoleGrant || recs[3].Actor != "system:migration" ||
		!strings.Contains(recs[3].Detail, "schema migration 4: identities under example.org/admin/ held role admin by their path before roles were data") {
		t.Fatalf("audit after the migration: %+v", recs[3:])
	}
	h := roles.For([]roles.Grant{{Role: "admin", Holder: "spiffe://example.org/admin/*"}}, "spiffe://example.org/admin/alice")
	if !h.Admin {
		t.Fatal("the old admin is no admin")
	}
}

// testPostgresDB is a fresh schema in the test database (storetest's
// PostgresURL, which an internal test cannot import).
func testPostgresDB(t *testing.T) *sql.DB {
	base := os.Getenv("CERTGATE_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, _, err := openPostgresDB(base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("CERTGATE_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL not reachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "certgate_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, _, err := openPostgresDB(base)
		if err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, _, err := openPostgresDB(u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestIssuerBackfill: a database made before issuers were recorded (schema
// version 1, one intermediate) is migrated with empty issuers, and the
// first CA change that adopts the installation's intermediate gives every
// old certificate and revocation event that issuer.
func TestIssuerBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	// Only version 1, as an older certgate left it.
	if _, _, err := migrateStep(ctx, db, sqliteDialect{}, ms[:1]); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, q := range []string{
		`INSERT INTO certificates (serial, identity, common_name, fingerprint, not_before, not_after, key_type, obtained, issued_at, der)
			VALUES ('a1', 'spiffe://td/a', 'a', 'f1', 0, 1, 'ed25519', 'enroll', 0, x'01')`,
		`INSERT INTO events (position, time, kind, serial, identity, reason, not_after) VALUES (1, 0, 'revoke', 'a1', 'spiffe://td/a', 1, 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.GetCertificate(ctx, "a1")
	if err != nil || c.Issuer != "" {
		t.Fatalf("migrated certificate issuer = %q, %v; want empty", c.Issuer, err)
	}
	if _, err := s.ApplyCAChange(ctx, CAChange{BackfillIssuer: "beef", Now: time.Unix(0, now)}); err != nil {
		t.Fatal(err)
	}
	c, err = s.GetCertificate(ctx, "a1")
	if err != nil || c.Issuer != "beef" {
		t.Errorf("backfilled certificate issuer = %q, %v", c.Issuer, err)
	}
	evs, err := s.Events(ctx, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Issuer != "beef" {
		t.Errorf("backfilled events = %+v, %v", evs, err)
	}
}

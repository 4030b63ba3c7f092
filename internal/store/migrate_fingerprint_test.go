package store

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
)

// TestMigrationDropsFingerprintIndex makes a store of schema version 5 with
// two certificates, one revoked, migrates it with foreign keys enforced (as
// OpenSQLite's connection has them), and checks that the rows and the
// revocation survive, that revocations still must name a recorded
// certificate, and that a fingerprint is no longer unique on its own.
func TestMigrationDropsFingerprintIndex(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		name := (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "old.db")}).String()
		db, err := sql.Open("sqlite", name+"?_pragma=foreign_keys(1)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		testFingerprintMigration(t, db, sqliteDialect{})
		var problems int
		if err := db.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&problems); err != nil || problems != 0 {
			t.Errorf("foreign_key_check: %d problems, %v", problems, err)
		}
		var leftovers int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_v5%' OR sql LIKE '%_v5%'`).Scan(&leftovers); err != nil || leftovers != 0 {
			t.Errorf("%d schema objects still name the old tables, %v", leftovers, err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		testFingerprintMigration(t, testPostgresDB(t), postgresDialect{})
	})
}

func testFingerprintMigration(t *testing.T, db *sql.DB, d dialect) {
	ctx := context.Background()
	ms, err := loadMigrations(d.name())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:5] {
		if _, _, err := migrateStep(ctx, db, d, ms[:m.version]); err != nil {
			t.Fatal(err)
		}
	}
	insertCert := func(serial, fp string) error {
		_, err := db.ExecContext(ctx, d.bind(`INSERT INTO certificates (serial, identity, common_name, fingerprint, not_before, not_after, key_type, obtained, renewed_from, token_id, issued_at, der, issuer)
			VALUES (?, 'spiffe://example.org/a', 'a', ?, 1, 2, 'ecdsa-p256', 'enroll', '', 't', 3, ?, 'k')`), serial, fp, []byte(serial))
		return err
	}
	revoke := func(serial string) error {
		_, err := db.ExecContext(ctx, d.bind(`INSERT INTO revocations (serial, reason, revoked_at, revoked_by) VALUES (?, 1, 5, 'admin')`), serial)
		return err
	}
	for _, s := range []string{"a1", "b2"} {
		if err := insertCert(s, "fp-"+s); err != nil {
			t.Fatal(err)
		}
	}
	if err := revoke("b2"); err != nil {
		t.Fatal(err)
	}
	if err := insertCert("c3", "fp-a1"); err == nil {
		t.Fatal("version 5 took a second certificate with the same fingerprint")
	}
	from, to, err := migrate(ctx, db, d)
	if err != nil || from != 5 || to != len(ms) {
		t.Fatalf("migrate: %d -> %d, %v", from, to, err)
	}
	var n int
	var der []byte
	var issuer string
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM certificates`).Scan(&n); err != nil || n != 2 {
		t.Errorf("certificates after the migration: %d, %v", n, err)
	}
	if err := db.QueryRowContext(ctx, d.bind(`SELECT der, issuer FROM certificates WHERE serial = ?`), "a1").Scan(&der, &issuer); err != nil || string(der) != "a1" || issuer != "k" {
		t.Errorf("a1 after the migration: %q %q, %v", der, issuer, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM revocations WHERE serial = 'b2'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("revocations of b2 after the migration: %d, %v", n, err)
	}
	if err := revoke("zz"); err == nil {
		t.Error("a revocation of an unrecorded serial was taken after the migration")
	}
	if err := insertCert("a1", "fp-other"); err == nil {
		t.Error("a duplicate serial was taken after the migration")
	}
	if err := insertCert("c3", "fp-a1"); err != nil {
		t.Errorf("a certificate whose fingerprint another has: %v", err)
	}
}

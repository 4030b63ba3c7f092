package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, kind, target, err string
	}{
		{url: "sqlite:///var/lib/certgate/certgate.db", kind: "sqlite", target: "/var/lib/certgate/certgate.db"},
		{url: "sqlite://data/certgate.db", kind: "sqlite", target: "data/certgate.db"},
		{url: "/abs/certgate.db", kind: "sqlite", target: "/abs/certgate.db"},
		{url: "certgate.db", kind: "sqlite", target: "certgate.db"},
		{url: "postgres://u@db:5432/certgate?sslmode=require", kind: "postgres", target: "postgres://u@db:5432/certgate?sslmode=require"},
		{url: "postgresql://db/certgate", kind: "postgres", target: "postgresql://db/certgate"},
		{url: "", err: "store: empty store URL"},
		{url: "sqlite:", err: `store: store URL "sqlite:": want sqlite:///absolute/path or sqlite://relative/path`},
		{url: "sqlite://", err: `store: store URL "sqlite://" names no database file`},
		{url: "mysql://db/x", err: `store: store URL "mysql://db/x": unsupported scheme "mysql" (want sqlite:// or postgres://)`},
	} {
		kind, target, err := ParseURL(tc.url)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseURL(%q) error = %v, want %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil || kind != tc.kind || target != tc.target {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.url, kind, target, err, tc.kind, tc.target)
		}
	}
}

func TestOpenSQLiteURLs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, u := range []string{"sqlite://rel.db", "sqlite://" + filepath.Join(dir, "abs.db"), "plain.db"} {
		s, err := Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := s.(*SQL); !ok {
			t.Errorf("Open(%q) = %T, want *SQL", u, s)
		}
		s.Close()
	}
	for _, name := range []string{"rel.db", "abs.db", "plain.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("database file: %v", err)
		}
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	latest := LatestSchemaVersion()
	from, to, err := Migrate(ctx, "sqlite://"+path)
	if err != nil || from != 0 || to != latest {
		t.Fatalf("Migrate on a new database = %d -> %d, %v; want 0 -> %d", from, to, err, latest)
	}
	from, to, err = Migrate(ctx, path)
	if err != nil || from != latest || to != latest {
		t.Fatalf("Migrate again = %d -> %d, %v; want %d -> %d", from, to, err, latest, latest)
	}
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != latest {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, latest)
	}
	// A newer certgate migrated this database: refuse it, change nothing.
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = OpenSQLite(ctx, path)
	want := fmt.Sprintf("store: database schema is newer than this certgate: it is at version 99, this certgate knows up to %d; upgrade certgate", latest)
	if !errors.Is(err, ErrSchemaTooNew) || err.Error() != want {
		t.Errorf("open a newer database: %v, want %q", err, want)
	}
}

func TestLoadMigrationsMatch(t *testing.T) {
	lite, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL: each version must exist for both", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d: %s vs %s", i+1, lite[i].name, pg[i].name)
		}
	}
}

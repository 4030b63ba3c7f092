package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/certgate/certgate/internal/store"
)

// NewSQLite opens a fresh SQLite store in t.TempDir() and closes it when
// the test ends.
func NewSQLite(t testing.TB) *store.SQL {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "certgate.db"))
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DefaultPostgresURL is the test database on every machine of this
// project; CERTGATE_TEST_POSTGRES overrides it.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// RequirePostgres checks that the test PostgreSQL database answers and
// returns its URL. If it does not, the test is skipped with a message
// saying so, or fails when CERTGATE_REQUIRE_POSTGRES=1 (as in CI, where
// PostgreSQL must be there).
func RequirePostgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CERTGATE_TEST_POSTGRES")
	if base == "" {
		base = DefaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: CERTGATE_TEST_POSTGRES: %v", err)
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable at %s (%v): skipping; set CERTGATE_REQUIRE_POSTGRES=1 to fail instead", u.Redacted(), err)
		if os.Getenv("CERTGATE_REQUIRE_POSTGRES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return base
}

// PostgresURL creates a fresh schema in the test PostgreSQL database and
// returns a URL whose connections use it (search_path), so tests and
// packages running in parallel never see each other's tables. The schema
// is dropped when the test ends. If PostgreSQL is not reachable the test
// is skipped or fails, as with [RequirePostgres].
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := RequirePostgres(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "certgate_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

package store

import (
	"context"
	"fmt"
	"strings"
)

// Open opens the store a URL names, applying pending migrations:
//
//   - "sqlite:///abs/path.db", "sqlite://relative/path.db" or a plain file
//     path: SQLite ([OpenSQLite]);
//   - "postgres://..." or "postgresql://...": PostgreSQL ([OpenPostgres]).
func Open(ctx context.Context, url string) (Store, error) {
	kind, target, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if kind == "postgres" {
		return OpenPostgres(ctx, target)
	}
	return OpenSQLite(ctx, target)
}

// ParseURL tells which backend a store URL names ("sqlite" or "postgres")
// and what to open: the file path for SQLite, the URL itself for
// PostgreSQL.
func ParseURL(url string) (kind, target string, err error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		if url == "" {
			return "", "", fmt.Errorf("store: empty store URL")
		}
		if strings.HasPrefix(url, "sqlite:") {
			return "", "", fmt.Errorf("store: store URL %q: want sqlite:///absolute/path or sqlite://relative/path", url)
		}
		return "sqlite", url, nil
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		if rest == "" || rest == "/" {
			return "", "", fmt.Errorf("store: store URL %q names no database file", url)
		}
		return "sqlite", rest, nil
	case "postgres", "postgresql":
		return "postgres", url, nil
	default:
		return "", "", fmt.Errorf("store: store URL %q: unsupported scheme %q (want sqlite:// or postgres://)", url, scheme)
	}
}

// Migrate applies the pending migrations of the store url names and
// returns the schema versions before and after. Open does the same; this is
// for an operator who wants it done explicitly, before starting servers.
func Migrate(ctx context.Context, url string) (from, to int, err error) {
	kind, target, err := ParseURL(url)
	if err != nil {
		return 0, 0, err
	}
	if kind == "postgres" {
		db, _, err := openPostgresDB(target)
		if err != nil {
			return 0, 0, err
		}
		defer db.Close()
		return migrate(ctx, db, postgresDialect{})
	}
	s, from, to, err := openSQLite(ctx, target, sqliteBusyTimeout)
	if err != nil {
		return 0, 0, err
	}
	return from, to, s.Close()
}

// SchemaVersion returns the migration version the database is at.
func (s *SQL) SchemaVersion(ctx context.Context) (int, error) {
	if err := s.readCheck("schema version"); err != nil {
		return 0, err
	}
	var v int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, s.wrap("schema version", err)
	}
	return v, nil
}

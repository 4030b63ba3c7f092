package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// Replicas that start together on a new database migrate it once: every
// Migrate succeeds, exactly one of them from version 0.
func TestPostgresConcurrentMigrate(t *testing.T) {
	u := storetest.PostgresURL(t)
	ctx := context.Background()
	const n = 4
	var wg sync.WaitGroup
	froms := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to, err := store.Migrate(ctx, u)
			if err != nil || to != store.LatestSchemaVersion() {
				t.Errorf("Migrate = %d -> %d, %v", from, to, err)
			}
			froms <- from
		}()
	}
	wg.Wait()
	close(froms)
	zero := 0
	for f := range froms {
		if f == 0 {
			zero++
		}
	}
	if zero != 1 {
		t.Errorf("%d replicas migrated from version 0, want exactly 1", zero)
	}
}

// A database migrated by a newer certgate (a replica already upgraded) is
// refused by an older one, by Open as by Migrate, and left as it is: an
// old replica never runs against, nor "repairs", a schema it does not
// know.
func TestPostgresRefusesNewerSchema(t *testing.T) {
	u := storetest.PostgresURL(t)
	ctx := context.Background()
	s := openPostgresURL(t, u)
	issueAndRevoke(t, s, "before")
	s.Close()
	raw, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future', 0)`); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("store: database schema is newer than this certgate: it is at version 99, this certgate knows up to %d; upgrade certgate", store.LatestSchemaVersion())
	if _, err := store.Open(ctx, u); !errors.Is(err, store.ErrSchemaTooNew) || err.Error() != want {
		t.Errorf("Open: %v, want %q", err, want)
	}
	if _, _, err := store.Migrate(ctx, u); !errors.Is(err, store.ErrSchemaTooNew) || err.Error() != want {
		t.Errorf("Migrate: %v, want %q", err, want)
	}
	var versions, events int
	if err := raw.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM schema_migrations), (SELECT COUNT(*) FROM events)`).Scan(&versions, &events); err != nil {
		t.Fatal(err)
	}
	if versions != store.LatestSchemaVersion()+1 || events != 1 {
		t.Errorf("after the refusals: %d schema versions, %d events; want %d and 1, unchanged", versions, events, store.LatestSchemaVersion()+1)
	}
}

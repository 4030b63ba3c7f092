package store_test

import (
	"context"
	"testing"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// openPostgres opens a store in a fresh schema of the test database, or
// skips the test when PostgreSQL is not reachable.
func openPostgres(t testing.TB) *store.SQL {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t) })
}

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// Two store handles on one SQLite file (two processes, as far as SQLite can
// tell: each has its own writer connection) write in turn, alone and in
// batches. Each writer keeps the chain heads of its own last commit
// (headCache); a commit by the other must be seen through PRAGMA
// data_version, or the next record would reuse a sequence number (refused
// by the primary key) or link to the wrong hash.
func TestHeadCacheTwoHandles(t *testing.T) {
	ctx := context.Background()
	a, b := openTwoHandles(t)

	var want int64
	appendOne := func(s *SQL, name string) {
		t.Helper()
		want++
		r, err := s.AppendAudit(ctx, entry(fmt.Sprintf("%s-%d", name, want)))
		if err != nil {
			t.Fatalf("record %d by %s: %v", want, name, err)
		}
		if r.Seq != want {
			t.Fatalf("record by %s: seq %d, want %d", name, r.Seq, want)
		}
	}
	// a alone: from the second commit on its heads are kept.
	appendOne(a, "a")
	appendOne(a, "a")
	if !a.heads.valid || a.heads.head.Seq != want {
		t.Fatalf("a keeps no heads after its commits: %+v", a.heads)
	}
	for i := 0; i < 20; i++ {
		w, name := a, "a"
		if i%2 == 1 {
			w, name = b, "b"
		}
		appendOne(w, name)
		if i%3 == 0 {
			appendOne(w, name)
		}
		if i%5 == 0 {
			// A batch of several (or several batches) on one handle.
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for j := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[j] = w.AppendAudit(ctx, entry(fmt.Sprintf("%s-batch-%d-%d", name, i, j)))
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			want += int64(len(errs))
		}
	}
	for _, s := range []*SQL{a, b} {
		recs, err := s.AuditRecords(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(recs)) != want {
			t.Fatalf("%d records, want %d", len(recs), want)
		}
		var v audit.Verifier
		for _, r := range recs {
			if err := v.Add(r); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The kept heads are used on the same driver connection only: data
// versions of two connections are not comparable.
func TestHeadCacheOtherConnection(t *testing.T) {
	ctx := context.Background()
	a, b := openTwoHandles(t)
	for i := 0; i < 2; i++ {
		if _, err := a.AppendAudit(ctx, entry("a")); err != nil {
			t.Fatal(err)
		}
	}
	// b writes; then a's kept heads are made to look as if they came from
	// another connection whose data version happens to be the current one.
	if _, err := b.AppendAudit(ctx, entry("b")); err != nil {
		t.Fatal(err)
	}
	a.heads.dataVersion = a.currentDataVersion(t)
	a.heads.driverConn = new(int)
	r, err := a.AppendAudit(ctx, entry("a"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 4 {
		t.Fatalf("seq %d, want 4", r.Seq)
	}
}

// The writer keeps the gateway grants of its last commit with the heads,
// and uses them only as it uses the heads: a grant made through another
// handle on the file (another process) is seen by the next issuance.
func TestHeadCacheGrants(t *testing.T) {
	ctx := context.Background()
	a, b := openTwoHandles(t)
	yes, no := true, false
	n := 0
	record := func(gateway *bool) error {
		n++
		is := testIssuance(fmt.Sprintf("%x", n))
		is.Cert.Identity = "spiffe://example.org/gw/a"
		is.GatewayRole = gateway
		return a.RecordIssuance(ctx, is)
	}
	if err := record(&no); err != nil {
		t.Fatal(err)
	}
	if !a.heads.valid || !a.heads.grantsRead || len(a.heads.gatewayGrants) != 0 {
		t.Fatalf("kept after an issuance that checked the role: %+v, want no gateway grants, read", a.heads)
	}
	// The kept grants are what the next transaction checks against: here
	// a grant the database does not hold.
	grant := roles.Grant{Role: roles.Gateway, Holder: "spiffe://example.org/gw/*", GrantedBy: "test", GrantedAt: time.Unix(1900000000, 0)}
	a.heads.gatewayGrants = []roles.Grant{grant}
	if err := record(&yes); err != nil {
		t.Fatalf("with the kept grants giving the role: %v", err)
	}
	if err := record(&no); !errors.Is(err, ErrRolesChanged) {
		t.Fatalf("with the kept grants giving the role: %v, want %v", err, ErrRolesChanged)
	}
	// That batch committed nothing, so kept nothing: the next reads the
	// grants.
	if err := record(&no); err != nil {
		t.Fatalf("after a batch that committed nothing: %v", err)
	}
	// Another handle grants the role for real, then revokes it: a reads
	// the grants again each time.
	if err := b.GrantRole(ctx, grant); err != nil {
		t.Fatal(err)
	}
	if err := record(&yes); err != nil {
		t.Fatalf("after another handle granted the role: %v", err)
	}
	if err := b.RevokeRole(ctx, grant, "test", time.Unix(1900000000, 0)); err != nil {
		t.Fatal(err)
	}
	if err := record(&yes); !errors.Is(err, ErrRolesChanged) {
		t.Fatalf("after another handle revoked the role: %v, want %v", err, ErrRolesChanged)
	}
	if err := record(&no); err != nil {
		t.Fatalf("after another handle revoked the role: %v", err)
	}
}

// A commit of the writer moves the file's data version by exactly one, in
// this build of SQLite: what the kept heads rely on. Checked after single
// operations and after batches, with nobody else writing: every kept
// version must be the current one (else the heads would never be used).
func TestHeadCacheOwnCommitVersion(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t, sqliteBusyTimeout)
	for i := 0; i < 10; i++ {
		var wg sync.WaitGroup
		errs := make([]error, 1+i%4*5)
		for j := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[j] = a.AppendAudit(ctx, entry(fmt.Sprintf("a-%d-%d", i, j)))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if !a.heads.valid {
			t.Fatal("no heads kept")
		}
		if v := a.currentDataVersion(t); v != a.heads.dataVersion {
			t.Fatalf("data version %d after the writer's commit, kept %d", v, a.heads.dataVersion)
		}
	}
}

// currentDataVersion reads the data version on the writer's connection
// (wdb has exactly one) in a transaction, as wtx.start does. Only while
// the writer is idle.
func (s *SQL) currentDataVersion(t *testing.T) uint32 {
	t.Helper()
	ctx := context.Background()
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var v uint32
	if err := conn.Raw(func(dc any) error {
		v, err = dc.(sqlite.FileControl).FileControlDataVersion("main")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// openTwoHandles opens two store handles on one new SQLite file: two
// processes, as far as SQLite can tell (each has its own writer
// connection).
func openTwoHandles(t *testing.T) (a, b *SQL) {
	t.Helper()
	a, path := openTemp(t, sqliteBusyTimeout)
	b, _, _, err := openSQLite(context.Background(), path, sqliteBusyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

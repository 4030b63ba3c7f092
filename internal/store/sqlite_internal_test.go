package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/certgate/certgate/internal/audit"
)

func openTemp(t *testing.T, busy time.Duration) (*SQL, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "certgate.db")
	s, _, _, err := openSQLite(context.Background(), path, busy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func entry(subject string) audit.Entry {
	return audit.Entry{Time: time.Unix(1900000000, 0), Actor: "test", Action: audit.ActionAdmin, Subject: subject}
}

func TestSQLiteSettings(t *testing.T) {
	s, path := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL: the WAL is synced at every commit
		"foreign_keys": "1",
		"busy_timeout": "5000",
	} {
		var got string
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if runtime.GOOS == "linux" && !sqlite.FdatasyncEnabled() {
		t.Error("commits sync with fsync, want fdatasync")
	}
	var qo string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only = %q (%v), want 1", qo, err)
	}
	if _, err := s.AppendAudit(ctx, entry("x")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(name), fi.Mode().Perm())
		}
	}
}

func TestSQLiteExistingFileKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the operator's 0640 kept", fi.Mode().Perm())
	}
}

func TestSQLiteNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSQLite(context.Background(), path)
	if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "store: sqlite "+path+": store unavailable: ") {
		t.Errorf("error = %v, want %q... wrapping ErrUnavailable", err, "store: sqlite "+path+": store unavailable: ")
	}
}

func TestSQLiteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	_, err := OpenSQLite(context.Background(), path)
	want := "store: sqlite: open " + path + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// A writer that cannot get the lock within the busy timeout reports the
// store unavailable, changes nothing, and the store recovers once the lock
// is released.
func TestSQLiteLockedIsUnavailable(t *testing.T) {
	s, path := openTemp(t, 100*time.Millisecond)
	ctx := context.Background()
	other, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.AppendAudit(ctx, entry("blocked"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendAudit while locked: %v, want %v", err, ErrUnavailable)
	}
	const want = "store: append audit record: begin: store unavailable: database is locked (5) (SQLITE_BUSY)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	tx.Rollback()
	r, err := s.AppendAudit(ctx, entry("after"))
	if err != nil || r.Seq != 1 {
		t.Errorf("AppendAudit after the lock is released = seq %d, %v; want seq 1", r.Seq, err)
	}
}

// An operation whose caller gives up while it is still queued is never
// applied; one the writer already took is committed and answered.
func TestCanceledWhileQueued(t *testing.T) {
	s, _ := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	entered := make(chan struct{})
	release := make(chan struct{})
	first := true
	hook := func() {
		if first {
			first = false
			close(entered)
			<-release
		}
	}
	s.beforeBatch.Store(&hook)

	firstDone := make(chan error, 1)
	go func() {
		_, err := s.AppendAudit(ctx, entry("first"))
		firstDone <- err
	}()
	<-entered // the writer holds a batch with "first" and waits

	qctx, cancel := context.WithCancel(ctx)
	queuedDone := make(chan error, 1)
	go func() {
		_, err := s.AppendAudit(qctx, entry("queued"))
		queuedDone <- err
	}()
	for len(s.queue) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-queuedDone
	if !errors.Is(err, context.Canceled) || err.Error() != "store: append audit record: context canceled" {
		t.Errorf("queued op after cancel: %v, want context canceled", err)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Errorf("first op: %v", err)
	}
	// A later write shows the writer skipped the abandoned op.
	r, err := s.AppendAudit(ctx, entry("last"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s.AuditRecords(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, r := range recs {
		subjects = append(subjects, r.Subject)
	}
	if r.Seq != 2 || strings.Join(subjects, ",") != "first,last" {
		t.Errorf("records %v (last seq %d), want first,last", subjects, r.Seq)
	}
}

// Close commits what is queued before it returns; writes after it fail.
func TestCloseDrains(t *testing.T) {
	s, path := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	entered := make(chan struct{})
	release := make(chan struct{})
	first := true
	hook := func() {
		if first {
			first = false
			close(entered)
			<-release
		}
	}
	s.beforeBatch.Store(&hook)
	const n = 50
	errs := make(chan error, n)
	submit := func(i int) {
		_, err := s.AppendAudit(ctx, entry(fmt.Sprint(i)))
		errs <- err
	}
	go submit(0)
	<-entered
	for i := 1; i < n; i++ {
		go submit(i)
	}
	for len(s.queue) < n-1 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the queue was drained", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("AppendAudit queued before Close: %v", err)
		}
	}
	_, err := s.AppendAudit(ctx, entry("late"))
	if !errors.Is(err, ErrUnavailable) || err.Error() != "store: append audit record: store unavailable: store is closed" {
		t.Errorf("AppendAudit after Close: %v", err)
	}
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if recs, _ := s2.AuditRecords(ctx, 0, 0); len(recs) != n {
		t.Errorf("%d records after Close, want %d", len(recs), n)
	}
}

func TestEventsChanged(t *testing.T) {
	s, _ := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	ch := s.EventsChanged()
	if _, err := s.AppendAudit(ctx, entry("no event")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("EventsChanged fired for a commit without events")
	default:
	}
	now := time.Unix(1900000000, 0)
	c := Certificate{Serial: "1a", Issuer: "ab", Identity: "spiffe://td/x", Fingerprint: strings.Repeat("ab", 32), KeyType: "ed25519",
		Obtained: ObtainedEnroll, NotBefore: now, NotAfter: now.Add(time.Hour), IssuedAt: now, DER: []byte{1}}
	if err := s.RecordIssuance(ctx, Issuance{Cert: c, Now: now, Audit: entry("issue")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, RevokeRequest{Serial: "1a", By: "test", Now: now}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("EventsChanged did not fire after a revocation")
	}
}

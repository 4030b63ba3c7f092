package auditsign_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/auditsign"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

var pass = []byte("correct horse battery staple")

// TestEnsureKey: the key is made once, encrypted, 0600; every later call
// (and concurrent first calls) load that one key; a wrong passphrase is
// refused and changes nothing.
func TestEnsureKey(t *testing.T) {
	dir := t.TempDir()
	path, pub := filepath.Join(dir, "ca", "audit.key"), filepath.Join(dir, "ca", "audit.pub.pem")
	var wg sync.WaitGroup
	keys := make([]string, 4)
	created := make([]bool, 4)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, c, err := auditsign.EnsureKey(path, pub, pass)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], created[i] = fmt.Sprintf("%x", k.Public()), c
		}()
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatalf("two keys made: %v", keys)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d calls say they made the key, want 1", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatal("key not encrypted")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Fatalf("files left behind: %v", entries)
	}
	if _, _, err := auditsign.EnsureKey(path, pub, []byte("wrong")); !errors.Is(err, pemutil.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatal("a refused open changed the key")
	}
}

type fixture struct {
	st   *store.SQL
	db   *sql.DB
	clk  *clock.Fake
	s    *checkpoint.Signer
	file string
	log  *testenv.SyncBuffer
}

func newFixture(t *testing.T) *fixture {
	k, _, err := auditsign.EnsureKey(filepath.Join(t.TempDir(), "k"), filepath.Join(t.TempDir(), "p"), pass)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewSigner("example.org/certgate/audit", k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "certgate.db")
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{st: st, db: db, clk: clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)), s: s,
		file: filepath.Join(t.TempDir(), "audit-checkpoints"), log: &testenv.SyncBuffer{}}
}

func (f *fixture) open(t *testing.T, every int64) *auditsign.Checkpointer {
	t.Helper()
	c, err := auditsign.New(auditsign.Options{Records: f.st, Signer: f.s, File: f.file, Every: every, Interval: time.Minute, Clock: f.clk, Log: slog.New(slog.NewJSONHandler(f.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) append(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := f.st.AppendAudit(context.Background(), audit.Entry{Time: f.clk.Now(), Actor: "system", Action: audit.ActionAdmin, Subject: fmt.Sprint(time.Now().UnixNano())}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) sizes(t *testing.T) []int64 {
	t.Helper()
	notes, err := auditsign.ReadFile(f.file, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, n := range notes {
		s, err := f.s.Verifier().Verify(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s.Size)
	}
	return out
}

// TestCheckpointCadence: a checkpoint at every N records, the head after
// the interval, the head at shutdown; nothing when nothing changed.
func TestCheckpointCadence(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.append(t, 2)
	c := f.open(t, 3)
	if err := c.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	f.append(t, 7) // 9 records
	if err := c.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.sizes(t)); got != "[2 5 8]" {
		t.Fatalf("sizes %s, want [2 5 8] (the first head, then every 3)", got)
	}
	f.clk.Advance(time.Minute)
	if err := c.Sync(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx, false); err != nil { // nothing new: nothing signed
		t.Fatal(err)
	}
	f.append(t, 1)
	if err := c.Sync(ctx, true); err != nil { // shutdown
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.sizes(t)); got != "[2 5 8 9 10]" {
		t.Fatalf("sizes %s, want [2 5 8 9 10]", got)
	}
	if l, ok := c.Latest(); !ok || l.Size != 10 {
		t.Fatalf("latest %+v", l.Checkpoint)
	}
	if !strings.Contains(f.log.String(), `"msg":"audit checkpoint","size":10`) {
		t.Fatalf("checkpoint not logged:\n%s", f.log)
	}
	// A restart continues from the file's newest checkpoint, even with a
	// partial note at its end (a crash while appending).
	fh, _ := os.OpenFile(f.file, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString("example.org/certgate/audit\n11\n")
	fh.Close()
	c2 := f.open(t, 3)
	if l, ok := c2.Latest(); !ok || l.Size != 10 {
		t.Fatalf("after restart: latest %+v %v", l.Checkpoint, ok)
	}
	if !strings.Contains(f.log.String(), "partial note") {
		t.Fatalf("partial note not reported:\n%s", f.log)
	}
}

// TestCheckpointerRefusesBrokenLog: a store truncated or rewritten below
// the newest checkpoint is reported and never signed over; put back, it
// is signed again.
func TestCheckpointerRefusesBrokenLog(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.append(t, 6)
	c := f.open(t, 100)
	if err := c.Sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	db := f.db
	var saved []any
	row := db.QueryRow(`SELECT time, actor, action, subject, detail, prev_hash, hash FROM audit WHERE seq = 6`)
	var tm int64
	var actor, action, subject, detail string
	var prev, hash []byte
	if err := row.Scan(&tm, &actor, &action, &subject, &detail, &prev, &hash); err != nil {
		t.Fatal(err)
	}
	saved = []any{tm, actor, action, subject, detail, prev, hash}
	if _, err := db.Exec(`DELETE FROM audit WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	f.append(t, 3) // seq 6, 7, 8 again, chained from record 5, another record 6
	f.clk.Advance(time.Hour)
	// The running checkpointer finds the first record that does not chain
	// from what it verified; the next sync starts from the checkpoint and
	// names the record the checkpoint vouches for.
	err := c.Sync(ctx, true)
	if !errors.Is(err, audit.ErrBroken) || err.Error() != "audit: record 7: previous-hash link does not match the record before it (record inserted, deleted or reordered)" {
		t.Fatalf("rewritten: %v", err)
	}
	err = c.Sync(ctx, true)
	if !errors.Is(err, audit.ErrBroken) || !strings.HasPrefix(err.Error(), "audit: record 6: hash") || !strings.Contains(err.Error(), "(log rewritten)") {
		t.Fatalf("rewritten, from the checkpoint: %v", err)
	}
	if c.Broken() == nil || fmt.Sprint(f.sizes(t)) != "[6]" {
		t.Fatalf("signed over a rewritten log: %v %v", c.Broken(), f.sizes(t))
	}
	if _, err := db.Exec(`DELETE FROM audit WHERE seq >= 6`); err != nil {
		t.Fatal(err)
	}
	err = c.Sync(ctx, true)
	if !errors.Is(err, audit.ErrBroken) || !strings.Contains(err.Error(), "audit: record 6: missing: the checkpoint signed at") {
		t.Fatalf("truncated: %v", err)
	}
	if !strings.Contains(f.log.String(), "does not extend the newest signed checkpoint") {
		t.Fatalf("not logged:\n%s", f.log)
	}
	if _, err := db.Exec(`INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash) VALUES (6, ?, ?, ?, ?, ?, ?, ?)`, saved...); err != nil {
		t.Fatal(err)
	}
	f.append(t, 1)
	if err := c.Sync(ctx, true); err != nil || c.Broken() != nil {
		t.Fatalf("put back: %v %v", err, c.Broken())
	}
	if got := fmt.Sprint(f.sizes(t)); got != "[6 7]" {
		t.Fatalf("sizes %s", got)
	}
}

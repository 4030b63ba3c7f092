package auditcheck_test

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
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/auditsign"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/testenv"
)

// swap is the checkpoints a test server shows: a test replaces the
// checkpointer to play a server whose log was rolled back or rewritten
// (signed by a holder of the audit key who also edited the database).
type swap struct {
	p atomic.Pointer[auditsign.Checkpointer]
}

func (s *swap) Latest() (checkpoint.Signed, bool) {
	if cp := s.p.Load(); cp != nil {
		return cp.Latest()
	}
	return checkpoint.Signed{}, false
}

// otherKey is a server that shows checkpoints signed with another key.
type otherKey struct {
	auditcheck.Server
	signer *checkpoint.Signer
	note   []byte
}

func (o otherKey) AuditKey(context.Context) ([]byte, error) {
	return checkpoint.MarshalPublicKey(o.signer.Public()), nil
}

func (o otherKey) AuditCheckpoint(context.Context) ([]byte, error) { return o.note, nil }

type witnessEnv struct {
	e      *testenv.Env
	db     *sql.DB
	signer *checkpoint.Signer
	shown  *swap
	gw, ag *auditcheck.Watcher
	alarms atomic.Int32
	log    *testenv.SyncBuffer
}

func newWitnessEnv(t *testing.T) *witnessEnv {
	t.Helper()
	k, _, err := auditsign.EnsureKey(filepath.Join(t.TempDir(), "audit.key"), filepath.Join(t.TempDir(), "audit.pub.pem"), []byte("pass phrase"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := checkpoint.NewSigner("example.org/certgate/audit", k)
	if err != nil {
		t.Fatal(err)
	}
	w := &witnessEnv{signer: signer, shown: &swap{}, log: &testenv.SyncBuffer{}}
	w.e = testenv.Start(t, testenv.WithServerOptions(func(o *server.Options) {
		o.Checkpoints, o.AuditKey = w.shown, signer.Public()
	}))
	w.newCheckpointer(t)
	if w.db, err = sql.Open("sqlite", filepath.Join(w.e.Dir, "certgate.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.db.Close() })

	// A gateway (it holds the gateway role, so it reads the records
	// between checkpoints) and a plain client's agent, each with its
	// witness file.
	gwID := "spiffe://example.org/gateway/edge"
	if err := w.e.Store.GrantRole(context.Background(), roles.Grant{Role: roles.Gateway, Holder: gwID, GrantedBy: "test", GrantedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	gwCert := w.e.IssueDirect(t, "/gateway/edge", ca.ClientProfile)
	agCert := w.e.IssueDirect(t, "/svc/billing", ca.ClientProfile)
	log := slog.New(slog.NewJSONHandler(w.log, nil))
	w.gw = &auditcheck.Watcher{Server: w.e.Client(t, &gwCert), Witness: checkpoint.NewWitness(filepath.Join(t.TempDir(), auditcheck.WitnessFile)),
		ReadRecords: true, Log: log, Alarm: func() { w.alarms.Add(1) }}
	w.ag = &auditcheck.Watcher{Server: w.e.Client(t, &agCert), Witness: checkpoint.NewWitness(filepath.Join(t.TempDir(), auditcheck.WitnessFile)), Log: log}
	return w
}

// newCheckpointer starts showing a checkpointer with a checkpoint file of
// its own, signed at the store's head now.
func (w *witnessEnv) newCheckpointer(t *testing.T) {
	t.Helper()
	cp, err := auditsign.New(auditsign.Options{Records: w.e.Store, Signer: w.signer, File: filepath.Join(t.TempDir(), "audit-checkpoints"), Every: 1000, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Sync(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	w.shown.p.Store(cp)
}

func (w *witnessEnv) sync(t *testing.T) int64 {
	t.Helper()
	cp := w.shown.p.Load()
	if err := cp.Sync(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	l, _ := cp.Latest()
	return l.Size
}

func (w *witnessEnv) grow(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := w.e.Store.AppendAudit(context.Background(), audit.Entry{Time: time.Now(), Actor: "system", Action: audit.ActionAdmin, Subject: fmt.Sprint("grow ", i, time.Now().UnixNano())}); err != nil {
			t.Fatal(err)
		}
	}
}

func observe(t *testing.T, w *auditcheck.Watcher) (int64, error) {
	t.Helper()
	s, err := w.Check(context.Background())
	return s.Size, err
}

// TestWitness: gateways and agents accept checkpoints that extend the one
// they remember and refuse, log and count one that does not: a log rolled
// back (smaller), forked (same size, other head), rewritten and grown
// (found by the gateway, which reads the records between; the agent,
// which cannot, accepts it: documented), or signed with another key. A
// refused checkpoint leaves the witness's memory as it was.
func TestWitness(t *testing.T) {
	w := newWitnessEnv(t)
	n0 := w.sync(t)
	for _, wt := range []*auditcheck.Watcher{w.gw, w.ag} {
		if got, err := observe(t, wt); err != nil || got != n0 {
			t.Fatalf("first sight: %d %v, want %d", got, err, n0)
		}
	}
	lagging := w.shown.p.Load() // a replica that signs no more below
	w.newCheckpointer(t)
	w.grow(t, 5)
	n1 := w.sync(t)
	for _, wt := range []*auditcheck.Watcher{w.gw, w.ag} {
		if got, err := observe(t, wt); err != nil || got != n1 || n1 != n0+5 {
			t.Fatalf("extended: %d %v, want %d", got, err, n1)
		}
	}
	remembered := func(wt *auditcheck.Watcher) []byte {
		b, err := os.ReadFile(wt.Witness.Path())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A replica whose newest checkpoint is older (it signed less
	// recently): the gateway checks from the records that the older leads
	// to what it remembers and keeps its memory; an agent cannot tell it
	// from a truncation and warns.
	current := w.shown.p.Load()
	w.shown.p.Store(lagging)
	if got, err := observe(t, w.gw); err != nil || got != n1 || w.alarms.Load() != 0 {
		t.Fatalf("lagging replica, gateway: %d %v (alarms %d)", got, err, w.alarms.Load())
	}
	if _, err := observe(t, w.ag); !errors.Is(err, checkpoint.ErrNotExtended) {
		t.Fatalf("lagging replica, agent: %v", err)
	}
	w.shown.p.Store(current)
	gwMem, agMem := remembered(w.gw), remembered(w.ag)
	saved := snapshot(t, w.db)

	// Rolled back: the last 3 records gone, a checkpointer that forgot.
	exec(t, w.db, `DELETE FROM audit WHERE seq > ?`, n1-3)
	w.newCheckpointer(t)
	for _, wt := range []*auditcheck.Watcher{w.gw, w.ag} {
		_, err := observe(t, wt)
		if !errors.Is(err, checkpoint.ErrNotExtended) || !strings.Contains(err.Error(), fmt.Sprintf("size %d is below the earlier %d", n1-3, n1)) {
			t.Fatalf("rolled back: %v", err)
		}
	}
	// Forked: as many records as remembered, one of them different.
	w.grow(t, 3)
	w.newCheckpointer(t)
	for _, wt := range []*auditcheck.Watcher{w.gw, w.ag} {
		if _, err := observe(t, wt); !errors.Is(err, checkpoint.ErrNotExtended) || !strings.Contains(err.Error(), "(log rewritten)") {
			t.Fatalf("forked: %v", err)
		}
	}
	// Rewritten and grown: the gateway recomputes the records between.
	w.grow(t, 4)
	w.newCheckpointer(t)
	if _, err := observe(t, w.gw); !errors.Is(err, checkpoint.ErrNotExtended) ||
		!strings.Contains(err.Error(), fmt.Sprintf("from %d to %d records: audit: record %d: previous-hash link does not match", n1, n1+4, n1+1)) {
		t.Fatalf("rewritten, gateway: %v", err)
	}
	if got := w.alarms.Load(); got != 3 {
		t.Fatalf("gateway alarms: %d, want 3", got)
	}
	if !bytes.Equal(remembered(w.gw), gwMem) || !bytes.Equal(remembered(w.ag), agMem) {
		t.Fatal("a refused checkpoint changed a witness's memory")
	}
	if !strings.Contains(w.log.String(), "does not extend the one this witness saw") {
		t.Fatalf("not logged:\n%s", w.log)
	}
	// A plain client cannot read the records: a rewrite that also grew
	// the log passes its checks (size, time, key) and is left to gateways
	// and certgate audit verify.
	if got, err := observe(t, w.ag); err != nil || got != n1+4 {
		t.Fatalf("rewritten, agent: %d %v", got, err)
	}

	// Another key, over the log as it was: refused by both.
	restore(t, w.db, saved)
	k2, _, _ := auditsign.EnsureKey(filepath.Join(t.TempDir(), "k2"), filepath.Join(t.TempDir(), "p2"), []byte("pass phrase"))
	s2, _ := checkpoint.NewSigner("example.org/certgate/audit", k2)
	w.signer = s2
	w.newCheckpointer(t)
	l, _ := w.shown.Latest()
	for _, wt := range []*auditcheck.Watcher{w.gw, w.ag} {
		other := *wt
		other.Server = otherKey{Server: wt.Server, signer: s2, note: l.Note()}
		if _, err := observe(t, &other); !errors.Is(err, checkpoint.ErrKeyChanged) {
			t.Fatalf("new key: %v", err)
		}
	}
}

type row struct {
	seq, time              int64
	actor, action, subject string
	detail                 string
	prev, hash             []byte
}

func snapshot(t *testing.T, db *sql.DB) []row {
	t.Helper()
	rows, err := db.Query(`SELECT seq, time, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.time, &r.actor, &r.action, &r.subject, &r.detail, &r.prev, &r.hash); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func restore(t *testing.T, db *sql.DB, rs []row) {
	t.Helper()
	exec(t, db, `DELETE FROM audit`)
	for _, r := range rs {
		exec(t, db, `INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.seq, r.time, r.actor, r.action, r.subject, r.detail, r.prev, r.hash)
	}
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

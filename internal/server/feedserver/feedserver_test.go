package feedserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/server/feedserver"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// These tests run the real feed follower (internal/feed) against this
// server half over TLS, with a real SQLite store.

type env struct {
	t       *testing.T
	st      *store.SQL
	srv     *httptest.Server
	down    atomic.Bool
	afters  chan string // the after= of each request
	fs      atomic.Pointer[feedserver.Server]
	clock   clock.Clock
	serials []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, afters: make(chan string, 100), clock: clock.Real{}}
	e.fs.Store(feedserver.New(feedserver.Options{Store: st, Notifier: st, Clock: e.clock, Heartbeat: 50 * time.Millisecond}))
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		after, err := feedserver.ParseAfter(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.afters <- r.URL.Query().Get("after")
		e.fs.Load().Stream(r.Context(), w, after)
	}))
	e.srv.EnableHTTP2 = true
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// issue records a certificate and returns its serial.
func (e *env) issue() string {
	e.t.Helper()
	c := storetest.NewCertificate("spiffe://example.org/svc/x", time.Now())
	if err := e.st.RecordIssuance(context.Background(), storetest.NewIssuance(c, "")); err != nil {
		e.t.Fatal(err)
	}
	return c.Serial
}

func (e *env) revoke(serial string) {
	e.t.Helper()
	if _, err := e.st.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, By: "test", Now: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// recorder counts what the follower applies.
type recorder struct {
	mu      sync.Mutex
	cur     *revocation.Set
	added   map[string]int
	updates chan struct{}
}

func newRecorder() *recorder {
	return &recorder{added: map[string]int{}, updates: make(chan struct{}, 1000)}
}

func (r *recorder) Update(s *revocation.Set) {
	r.mu.Lock()
	for _, a := range revocation.Added(r.cur, s) {
		r.added[a]++
	}
	r.cur = s
	r.mu.Unlock()
	select {
	case r.updates <- struct{}{}:
	default:
	}
}

func (r *recorder) waitFor(t *testing.T, serials ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		all := true
		for _, s := range serials {
			all = all && r.cur.Contains(s)
		}
		r.mu.Unlock()
		if all {
			return
		}
		select {
		case <-r.updates:
		case <-deadline:
			t.Fatalf("follower did not apply %v", serials)
		}
	}
}

func (e *env) follower(t *testing.T) (*feed.Follower, *recorder, context.CancelFunc) {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	f, err := feed.NewFollower(feed.FollowerOptions{URLs: []string{e.srv.URL}, TLSConfig: &tls.Config{RootCAs: pool},
		Clock: e.clock, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, rec); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, rec, cancel
}

func TestSnapshotThenLive(t *testing.T) {
	e := newEnv(t)
	old := e.issue()
	e.revoke(old)
	f, rec, _ := e.follower(t)
	rec.waitFor(t, old)
	if got := <-e.afters; got != "" {
		t.Fatalf("first request resumed after %q, want a snapshot", got)
	}
	start := time.Now()
	live := e.issue()
	e.revoke(live)
	rec.waitFor(t, live)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("live revocation took %s", d)
	}
	if ok, _ := f.Connected(); !ok || f.Position() != 2 {
		t.Fatalf("connected %v position %d", ok, f.Position())
	}
}

// TestResumeAfterDisconnect: revocations while the follower is cut off
// arrive on reconnect, each exactly once, via ?after= (no new snapshot).
func TestResumeAfterDisconnect(t *testing.T) {
	e := newEnv(t)
	f, rec, _ := e.follower(t)
	first := e.issue()
	e.revoke(first)
	rec.waitFor(t, first)
	<-e.afters

	e.down.Store(true)
	e.srv.CloseClientConnections()
	for ok := true; ok; ok, _ = f.Connected() {
		time.Sleep(5 * time.Millisecond)
	}
	var missed []string
	for range 3 {
		s := e.issue()
		e.revoke(s)
		missed = append(missed, s)
	}
	time.Sleep(100 * time.Millisecond) // a few refused reconnects
	e.down.Store(false)
	rec.waitFor(t, missed...)
	if got := <-e.afters; got != "1" {
		t.Fatalf("reconnect resumed after %q, want 1", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range append(missed, first) {
		if rec.added[s] != 1 {
			t.Fatalf("serial %s applied %d times", s, rec.added[s])
		}
	}
	if f.Position() != 4 {
		t.Fatalf("position %d, want 4", f.Position())
	}
}

func TestHeartbeatKeepsSetFresh(t *testing.T) {
	e := newEnv(t)
	_, rec, _ := e.follower(t)
	rec.waitFor(t)
	time.Sleep(200 * time.Millisecond)
	rec.mu.Lock()
	age := time.Since(rec.cur.Updated())
	rec.mu.Unlock()
	if age > 150*time.Millisecond {
		t.Fatalf("set is %s old with a 50ms heartbeat", age)
	}
}

// TestFollowerAheadOfRestoredLog: a follower whose position is past the end
// of the log (the store was restored from an older backup) gets a fresh
// snapshot instead of silently waiting for positions to catch up.
func TestFollowerAheadOfRestoredLog(t *testing.T) {
	e := newEnv(t)
	f, rec, _ := e.follower(t)
	var serials []string
	for range 3 {
		s := e.issue()
		e.revoke(s)
		serials = append(serials, s)
	}
	rec.waitFor(t, serials...)
	<-e.afters

	// "Restore" an older backup: a new store with one revocation, served
	// by the same address.
	restored, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "restored.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	old := e.st
	e.st = restored
	s := e.issue()
	e.revoke(s)
	e.st = old
	e.fs.Store(feedserver.New(feedserver.Options{Store: restored, Notifier: restored, Clock: e.clock, Heartbeat: 50 * time.Millisecond}))
	e.srv.CloseClientConnections()
	rec.waitFor(t, s)
	if got := <-e.afters; got != "3" {
		t.Fatalf("reconnect asked after %q, want 3", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.cur.Len() != 1 || f.Position() != 1 {
		t.Fatalf("after the snapshot: %d revoked, position %d; want 1 and 1", rec.cur.Len(), f.Position())
	}
}

func TestParseAfter(t *testing.T) {
	for q, want := range map[string]string{
		"":                           "-1 <nil>",
		"?after=0":                   "0 <nil>",
		"?after=42":                  "42 <nil>",
		"?after=-1":                  `0 after "-1" is not a feed position`,
		"?after=x":                   `0 after "x" is not a feed position`,
		"?after=1e3":                 `0 after "1e3" is not a feed position`,
		"?after=9999999999999999999": `0 after "9999999999999999999" is not a feed position`,
	} {
		after, err := feedserver.ParseAfter(httptest.NewRequest("GET", "/v1/feed"+q, nil))
		if got := fmt.Sprint(after, " ", err); got != want {
			t.Errorf("ParseAfter(%q) = %s, want %s", q, got, want)
		}
	}
}

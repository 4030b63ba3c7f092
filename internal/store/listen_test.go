package store_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// issueAndRevoke records a certificate on s and revokes it: one event.
func issueAndRevoke(t *testing.T, s store.Store, name string) {
	t.Helper()
	ctx := context.Background()
	c := storetest.NewCertificate("spiffe://example.org/svc/"+name, storetest.T0)
	if err := s.RecordIssuance(ctx, storetest.NewIssuance(c, "")); err != nil {
		t.Fatal(err)
	}
	req := store.RevokeRequest{Serial: c.Serial, Reason: 1, By: storetest.Admin, Now: storetest.T0.Add(time.Minute)}
	if _, err := s.Revoke(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-ch:
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("%s: no wake-up within %v", what, within)
		return 0
	}
}

func wantOpen(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: woken, want no wake-up", what)
	default:
	}
}

// A revocation committed by one store (replica A) wakes the followers of
// another store on the same schema (replica B) through LISTEN/NOTIFY, not
// only those of A; a store in another schema of the same database is not
// woken.
func TestPostgresEventsChangedAcrossReplicas(t *testing.T) {
	u := storetest.PostgresURL(t)
	a, b := openPostgresURL(t, u), openPostgresURL(t, u)
	other := openPostgres(t) // another schema: another installation
	// The listeners connect in the background; a first commit proves B's is
	// up before the measured ones.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		ch := b.EventsChanged()
		issueAndRevoke(t, a, "warmup")
		select {
		case <-ch:
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("replica B never woken by replica A's commits")
			}
			continue
		}
		break
	}
	otherCh := other.EventsChanged()
	var worst time.Duration
	for i := range 20 {
		ch := b.EventsChanged()
		start := time.Now()
		issueAndRevoke(t, a, "x")
		waitClosed(t, ch, 5*time.Second, "replica B after a revocation on replica A")
		worst = max(worst, time.Since(start))
		evs, err := b.Events(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := i + 2; len(evs) != want {
			t.Fatalf("replica B reads %d events after the wake-up, want %d", len(evs), want)
		}
	}
	t.Logf("slowest issue+revoke on A until the wake-up on B: %v", worst)
	// B's own commits wake B's followers too (the writer, not the database).
	ch := b.EventsChanged()
	issueAndRevoke(t, b, "own")
	waitClosed(t, ch, 5*time.Second, "replica B after its own revocation")
	time.Sleep(200 * time.Millisecond)
	wantOpen(t, otherCh, "a store in another schema")
}

// The listener's connection breaks: a revocation committed meanwhile is
// never notified to B, so B wakes its followers once it has reconnected,
// and notifications work again after that.
func TestPostgresListenerReconnects(t *testing.T) {
	raw := storetest.PostgresURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: u.Host}
	p.start(t, "127.0.0.1:0")
	defer p.stop()
	u.Host = p.addr
	a, b := openPostgresURL(t, raw), openPostgresURL(t, u.String())
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch := b.EventsChanged()
		issueAndRevoke(t, a, "warmup")
		select {
		case <-ch:
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("replica B never woken by replica A's commits")
			}
			continue
		}
		break
	}

	warm, err := a.Events(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
	ch := b.EventsChanged()
	issueAndRevoke(t, a, "during-outage")
	time.Sleep(300 * time.Millisecond)
	wantOpen(t, ch, "replica B while its database connection is down")
	p.start(t, p.addr)
	took := waitClosed(t, ch, 15*time.Second, "replica B after its listener reconnected")
	t.Logf("woken %v after the connection came back", took)
	// A pooled connection broken by the outage fails the first read that
	// takes it (the driver pings only connections idle for over a second),
	// as a feed stream's read would; the follower reads again.
	var evs []store.Event
	for try := 0; ; try++ {
		evs, err = b.Events(context.Background(), 0, 0)
		if err == nil {
			break
		}
		if try == 20 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := len(warm) + 1; len(evs) != want || evs[want-1].Position != int64(want) {
		t.Fatalf("replica B reads %d events after the reconnection, want %d", len(evs), want)
	}

	ch = b.EventsChanged()
	issueAndRevoke(t, a, "after")
	waitClosed(t, ch, 5*time.Second, "replica B after the reconnection, for a new revocation")
}

// Closing a store stops its listener: Close returns promptly even while
// the listener is waiting for notifications or reconnecting.
func TestPostgresCloseStopsListener(t *testing.T) {
	raw := storetest.PostgresURL(t)
	u, _ := url.Parse(raw)
	p := &tcpProxy{target: u.Host}
	p.start(t, "127.0.0.1:0")
	u.Host = p.addr
	s, err := store.OpenPostgres(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	p.stop() // the listener is now reconnecting
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v while the listener was reconnecting", d)
	}
}

package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

// spread gives gateway i the replicas in the order it prefers them: its
// home replica first, then the others.
func spread(urls []string, home int) []string {
	out := make([]string, 0, len(urls))
	for k := range urls {
		out = append(out, urls[(home+k)%len(urls)])
	}
	return out
}

// enrollMany enrolls n clients named prefix-i, through the replicas in
// turn, a few at a time.
func (h *haSetup) enrollMany(t *testing.T, prefix string, n int) []client {
	t.Helper()
	clients := make([]client, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := h.enroll(i%len(h.urls), fmt.Sprintf("%s-%d", prefix, i))
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return clients
}

func openStore(t *testing.T, u string) *store.SQL {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestHARevocationReachesEveryGateway: three server replicas on one
// PostgreSQL and five gateways spread over them (each follows its home
// replica). 120 revocations, each sent to a replica in turn: every one is
// enforced by all five gateways, its live connection through each closed
// and a new handshake refused, with p99 under 1 s from the revoke call's
// return. Two thirds of them are committed on a replica other than a
// given gateway's: they reach it through LISTEN/NOTIFY, not the 1 s poll.
// Every gateway applies the events 1..120 exactly once, in order.
func TestHARevocationReachesEveryGateway(t *testing.T) {
	pg := storetest.PostgresURL(t)
	h := newHASetup(t, pg)
	h.startReplica(h.home)
	h.startReplica("127.0.0.1:0")
	h.startReplica("127.0.0.1:0")
	var gws []*haGateway
	for i := range 5 {
		gws = append(gws, h.startGateway(fmt.Sprintf("gw%d", i), spread(h.urls, i%3)))
	}
	const n = 120
	clients := h.enrollMany(t, "ha", n)

	lat := make([]time.Duration, n)
	const workers = 3
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < n; k += workers {
				d, err := h.revokeAndWait(gws, clients[k], k%3)
				if err != nil {
					errs <- fmt.Errorf("revocation %d (replica %d): %w", k, k%3, err)
					return
				}
				lat[k] = d
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p50, p99, worst := quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1)
	t.Logf("%d revocations over 3 replicas, enforced by 5 gateways (connection closed + handshake refused at each): p50 %v, p99 %v, max %v",
		n, p50.Round(time.Microsecond), p99.Round(time.Microsecond), worst.Round(time.Microsecond))
	if p99 >= time.Second {
		t.Errorf("p99 %v, want under 1s", p99)
	}

	evs, last := revokeEvents(t, openStore(t, pg))
	if len(evs) != n {
		t.Fatalf("%d revocation events in the store, want %d", len(evs), n)
	}
	for _, g := range gws {
		g.waitPosition(t, last, 5*time.Second)
		g.checkApplied(t, evs)
	}
}

// revokeAndWait opens a live connection for c through every gateway,
// revokes c on replica r, and returns how long after the revoke call
// returned every gateway had closed its connection and refused a new
// handshake.
func (h *haSetup) revokeAndWait(gws []*haGateway, c client, r int) (time.Duration, error) {
	closed := make([]<-chan struct{}, len(gws))
	for i, g := range gws {
		conn, done, err := h.openLive(g, c)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		closed[i] = done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.admins[r].Revoke(ctx, wire.RevokeRequest{Serial: c.serial, Reason: "keyCompromise"}); err != nil {
		return 0, err
	}
	returned := time.Now()
	deadline := returned.Add(5 * time.Second)
	for i, g := range gws {
		select {
		case <-closed[i]:
		case <-time.After(time.Until(deadline)):
			return 0, fmt.Errorf("gateway %s: live connection still open 5s after the revoke call returned", g.name)
		}
		for !h.refusedBy(g, c) {
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("gateway %s: handshake still accepted 5s after the revoke call returned", g.name)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(returned), nil
}

// TestHAKillReplicaDuringRevocations: three "certgate server" processes on
// one PostgreSQL, five gateways (two at home on replica 0). During a
// stream of 60 revocations sent to the replicas in turn, replica 0 gets
// SIGKILL; a revocation whose replica fails is sent again to the next
// one, as an operator would. Replica 0's gateways fail over and resume
// from their position: at the end every gateway holds exactly the revoked
// set of the store, has applied events 1..N exactly once each, in order,
// and refuses every revoked client while admitting the others.
func TestHAKillReplicaDuringRevocations(t *testing.T) {
	pg := storetest.PostgresURL(t)
	h := newHASetup(t, pg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	victim, _ := h.startReplicaProcess(ctx, h.home)
	h.startReplicaProcess(ctx, testenv.FreeAddr(t))
	h.startReplicaProcess(ctx, testenv.FreeAddr(t))
	homes := []int{0, 0, 1, 1, 2}
	var gws []*haGateway
	for i, home := range homes {
		gws = append(gws, h.startGateway(fmt.Sprintf("gw%d", i), spread(h.urls, home)))
	}
	const n, keep, killAt = 60, 10, 20
	clients := h.enrollMany(t, "kill", n+keep)

	// Three senders stream the revocations; when 20 are done, replica 0
	// is killed, with revocations in flight on it.
	var killing atomic.Bool
	var killedAt atomic.Int64
	var done, retried atomic.Int32
	killNow := make(chan struct{})
	go func() {
		<-killNow
		killing.Store(true)
		victim.Kill(t)
		killedAt.Store(time.Now().UnixNano())
	}()
	const senders = 3
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < n; k += senders {
				if err := h.revokeWithFailover(ctx, clients[k].serial, k%3, &killing, &retried); err != nil {
					errs <- fmt.Errorf("revocation %d: %w", k, err)
					return
				}
				if done.Add(1) == killAt {
					close(killNow)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if killedAt.Load() == 0 {
		t.Fatal("replica 0 was not killed")
	}
	killed := time.Unix(0, killedAt.Load())
	t.Logf("replica 0 killed after %d revocations; %d revocations sent again to another replica", killAt, retried.Load())

	st := openStore(t, pg)
	evs, last := revokeEvents(t, st)
	if len(evs) != n {
		t.Fatalf("%d events in the store, want %d (one per revoked serial)", len(evs), n)
	}
	want := make([]string, 0, n)
	for _, ev := range evs {
		want = append(want, ev.Serial)
	}
	sort.Strings(want)
	for i, g := range gws {
		g.waitPosition(t, last, 10*time.Second)
		g.checkApplied(t, evs)
		got := g.holder.Load().Serials()
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("gateway %s holds %d revoked serials, the store %d", g.name, len(got), len(want))
		}
		if homes[i] == 0 {
			g.mu.Lock()
			last := g.steps[len(g.steps)-1].at
			g.mu.Unlock()
			if !last.After(killed) {
				t.Errorf("gateway %s (home: the killed replica) applied nothing after the kill", g.name)
			}
		}
	}
	for _, g := range gws {
		for k, c := range clients {
			if got, want := h.refusedBy(g, c), k < n; got != want {
				t.Errorf("gateway %s, client %d: handshake refused = %v, want %v", g.name, k, got, want)
			}
		}
	}
}

// revokeWithFailover revokes serial on replica r; once replica 0 is being
// killed, a failure to reach it sends the revocation to the next replica.
// A revocation replica 0 committed before dying is then found already
// revoked, which is not an error and appends no second event.
func (h *haSetup) revokeWithFailover(ctx context.Context, serial string, r int, killing *atomic.Bool, retried *atomic.Int32) error {
	for try := 0; ; try++ {
		rr := (r + try) % len(h.urls)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := h.admins[rr].Revoke(rctx, wire.RevokeRequest{Serial: serial, Reason: "keyCompromise"})
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) || rr != 0 || !killing.Load() || try == len(h.urls)-1 {
			return fmt.Errorf("replica %d: %w", rr, err)
		}
		retried.Add(1)
	}
}

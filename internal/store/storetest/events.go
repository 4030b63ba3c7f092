package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/store"
)

var eventTests = []subtest{
	{"LastPosition", func(t *testing.T, e *env) {
		if pos, err := e.s.LastPosition(e.ctx); err != nil || pos != 0 {
			t.Fatalf("LastPosition of an empty store = %d, %v; want 0", pos, err)
		}
		for i := range 3 {
			e.revoke(store.RevokeRequest{Serial: e.issue(identity(i), T0).Serial})
		}
		if pos, err := e.s.LastPosition(e.ctx); err != nil || pos != 3 {
			t.Fatalf("LastPosition after 3 revocations = %d, %v; want 3", pos, err)
		}
	}},
	{"Paging", func(t *testing.T, e *env) {
		if evs := e.events(); evs == nil || len(evs) != 0 {
			t.Errorf("Events on an empty store = %#v, want an empty non-nil slice", evs)
		}
		var serials []string
		for i := range 5 {
			c := e.issue(identity(i), T0)
			e.revoke(store.RevokeRequest{Serial: c.Serial})
			serials = append(serials, c.Serial)
		}
		for _, tc := range []struct {
			after int64
			limit int
			want  []int64
		}{
			{0, 0, []int64{1, 2, 3, 4, 5}},
			{0, 2, []int64{1, 2}},
			{2, 2, []int64{3, 4}},
			{4, 10, []int64{5}},
			{5, 0, nil},
			{99, 1, nil},
		} {
			evs, err := e.s.Events(e.ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("Events(%d, %d): %v", tc.after, tc.limit, err)
			}
			if len(evs) != len(tc.want) {
				t.Errorf("Events(%d, %d) returned %d events, want %v", tc.after, tc.limit, len(evs), tc.want)
				continue
			}
			for i, ev := range evs {
				if ev.Position != tc.want[i] || ev.Serial != serials[tc.want[i]-1] {
					t.Errorf("Events(%d, %d)[%d] = position %d serial %s, want %d %s", tc.after, tc.limit, i, ev.Position, ev.Serial, tc.want[i], serials[tc.want[i]-1])
				}
			}
		}
		_, err := e.s.Events(e.ctx, 0, -1)
		wantErr(t, err, nil, "store: events: negative limit -1")
	}},
	{"ConcurrentNoGaps", func(t *testing.T, e *env) {
		const n = 40
		certs := make([]store.Certificate, n)
		for i := range n {
			certs[i] = e.issue(identity(i), T0)
		}
		// Failing operations interleaved with successful ones must not
		// leave gaps either.
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				req := store.RevokeRequest{Serial: certs[i].Serial, Reason: 1, By: Admin, Now: T0.Add(time.Hour)}
				if _, err := e.s.Revoke(e.ctx, req); err != nil {
					t.Errorf("Revoke: %v", err)
				}
			}()
			go func() {
				defer wg.Done()
				req := store.RevokeRequest{Serial: "f" + certs[i].Serial, Reason: 1, By: Admin, Now: T0.Add(time.Hour)}
				e.s.Revoke(e.ctx, req)
			}()
		}
		wg.Wait()
		evs := e.events()
		if len(evs) != n {
			t.Fatalf("%d events, want %d", len(evs), n)
		}
		seen := map[string]bool{}
		for i, ev := range evs {
			if ev.Position != int64(i+1) {
				t.Fatalf("event %d has position %d: positions must be 1..n without gaps", i, ev.Position)
			}
			seen[ev.Serial] = true
		}
		if len(seen) != n {
			t.Errorf("events name %d distinct serials, want %d", len(seen), n)
		}
	}},
	{"Snapshot", func(t *testing.T, e *env) {
		snap, err := e.s.RevocationSnapshot(e.ctx, T0)
		if err != nil || snap.Position != 0 || len(snap.Revoked) != 0 {
			t.Fatalf("snapshot of an empty store = %+v, %v; want position 0, nothing revoked", snap, err)
		}
		short := e.issue("spiffe://example.org/svc/short", T0.Add(-23*time.Hour)) // expires at T0+1h
		long := e.issue("spiffe://example.org/svc/long", T0)
		e.issue("spiffe://example.org/svc/kept", T0)
		e.revoke(store.RevokeRequest{Serial: short.Serial, Now: T0})
		e.revoke(store.RevokeRequest{Serial: long.Serial, Now: T0, Reason: 1})
		for _, tc := range []struct {
			now  time.Time
			want []string
		}{
			{T0, []string{short.Serial, long.Serial}},
			{short.NotAfter, []string{short.Serial, long.Serial}}, // still valid at NotAfter itself
			{short.NotAfter.Add(time.Nanosecond), []string{long.Serial}},
			{long.NotAfter.Add(time.Second), nil},
		} {
			snap, err := e.s.RevocationSnapshot(e.ctx, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Position != 2 {
				t.Errorf("snapshot at %v: position %d, want 2", tc.now, snap.Position)
			}
			var got []string
			for _, ev := range snap.Revoked {
				if ev.Kind != store.EventRevoke {
					t.Errorf("snapshot event kind %q", ev.Kind)
				}
				got = append(got, ev.Serial)
			}
			if len(got) != len(tc.want) {
				t.Errorf("snapshot at %v: %v, want %v", tc.now, got, tc.want)
				continue
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("snapshot at %v: %v, want %v (in position order)", tc.now, got, tc.want)
				}
			}
		}
		_, err = e.s.RevocationSnapshot(e.ctx, time.Time{})
		wantErr(t, err, nil, "store: revocation snapshot: now is not set")
	}},
	{"SnapshotConsistent", func(t *testing.T, e *env) {
		const n = 60
		certs := make([]store.Certificate, n)
		for i := range n {
			certs[i] = e.issue(identity(i), T0)
		}
		ctx, cancel := context.WithCancel(e.ctx)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.s.Revoke(ctx, store.RevokeRequest{Serial: certs[i].Serial, By: Admin, Now: T0})
			}()
		}
		// While revocations land, every snapshot must hold exactly the
		// events up to its position: no more, no fewer.
		snaps := make(chan store.Snapshot, 1000)
		var readers sync.WaitGroup
		readers.Add(1)
		go func() {
			defer readers.Done()
			for ctx.Err() == nil {
				snap, err := e.s.RevocationSnapshot(ctx, T0)
				if err != nil {
					return
				}
				select {
				case snaps <- snap:
				default:
				}
			}
		}()
		wg.Wait()
		cancel()
		readers.Wait()
		close(snaps)
		final, err := e.s.RevocationSnapshot(e.ctx, T0)
		if err != nil {
			t.Fatal(err)
		}
		for _, snap := range append(collect(snaps), final) {
			if int64(len(snap.Revoked)) != snap.Position {
				t.Fatalf("snapshot at position %d holds %d revocations", snap.Position, len(snap.Revoked))
			}
			for i, ev := range snap.Revoked {
				if ev.Position != int64(i+1) {
					t.Fatalf("snapshot at position %d: event %d has position %d", snap.Position, i, ev.Position)
				}
			}
		}
		if final.Position != n {
			t.Errorf("final snapshot position %d, want %d", final.Position, n)
		}
	}},
}

func collect(ch <-chan store.Snapshot) []store.Snapshot {
	var out []store.Snapshot
	for s := range ch {
		out = append(out, s)
	}
	return out
}

package gateway

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestReleasePolicy(t *testing.T) {
	r := releasePolicy{minNew: 1000}
	steps := []struct {
		parked int
		hs     uint64
		want   bool
		why    string
	}{
		{0, 0, false, "nothing"},
		{800, 900, false, "handshakes going on"},
		{1500, 1600, false, "handshakes going on"},
		{1600, 1600, true, "quiet, 1,600 more parked"},
		{1600, 1600, false, "nothing new since"},
		{2500, 2600, false, "handshakes going on"},
		{2500, 2600, false, "quiet, 900 more: fewer than minNew"},
		{3000, 3100, false, "handshakes going on"},
		{3000, 3100, true, "quiet, 1,400 more: minNew and a quarter"},
		{3000, 3100, false, "quiet, nothing new"},
		{200, 3100, false, "most closed"},
		{1100, 4000, false, "handshakes going on"},
		{1300, 4000, true, "quiet, 1,100 more than the lowest since"},
		{20000, 30000, false, "handshakes going on"},
		{20000, 30000, true, "quiet"},
		{24000, 40000, false, "handshakes going on"},
		{24000, 40000, false, "quiet, 4,000 more: less than a quarter"},
		{26000, 42000, false, "handshakes going on"},
		{26000, 42000, true, "quiet, 6,000 more: a quarter"},
	}
	for i, s := range steps {
		if got := r.due(s.parked, s.hs); got != s.want {
			t.Fatalf("step %d (%s): due(%d, %d) = %v", i, s.why, s.parked, s.hs, got)
		}
	}
}

// TestReleaseAfterBurst: once connections opened in a burst are parked
// and no handshake came for releaseEvery, the gateway releases memory
// once; not again without a new burst; again after one. Real TLS.
func TestReleaseAfterBurst(t *testing.T) {
	e, _ := parkEnv(t)
	var calls atomic.Int32
	old := releaseMemory
	releaseMemory = func() { calls.Add(1) }
	t.Cleanup(func() { releaseMemory = old })
	e.gw.releaseMin.Store(4)
	leaf := e.ca.Issue(t, withSvc("a"))
	burst := func(n int) []*h1conn {
		var hs []*h1conn
		for i := range n {
			h := e.h1conn(t, leaf)
			if err := h.do(fmt.Sprintf("/burst/%d", i)); err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
		return hs
	}
	hs := burst(5)
	waitFor(t, "the release after the burst", func() bool { return calls.Load() == 1 })
	// Requests on the open connections (they are woken from the poller
	// and parked again) and fewer new connections than releaseMin: no
	// release.
	for i, h := range hs {
		if err := h.do(fmt.Sprintf("/again/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	hs = append(hs, burst(2)...)
	time.Sleep(3 * releaseEvery)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d releases without a new burst", n)
	}
	// Most close, then a new burst: released again.
	for _, h := range hs[:6] {
		h.c.Close()
	}
	waitFor(t, "the closed ones forgotten", func() bool { return e.gw.Connections() == 1 })
	time.Sleep(2 * releaseEvery)
	burst(4)
	waitFor(t, "the release after the second burst", func() bool { return calls.Load() == 2 })
}

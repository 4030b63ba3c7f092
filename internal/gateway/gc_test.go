package gateway

import (
	goruntime "runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{1 * mib, 400},
		{4 * mib, 400},
		{8 * mib, 200},
		{12 * mib, 133},
		{16 * mib, 100},
		{80 * mib, 100},
		{4 << 30, 100},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

// With GOGC in the environment the runtime's target is left alone.
func TestSetGCDefaultKeepsGOGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "150")
	if SetGCDefault() {
		t.Error("SetGCDefault started the tuner although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d after SetGCDefault with GOGC set, want it unchanged (100)", got)
	}
}

// The tuner sets the target after each collection from the live heap: 100
// with a large live heap, more with a small one.
func TestGCTunerFollowsLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	tu := startGCTuner()
	defer func() {
		tu.stopped.Store(true)
		goruntime.GC() // the last run, if one is pending, happens now
		time.Sleep(50 * time.Millisecond)
		debug.SetGCPercent(old)
	}()
	// collect runs a collection and waits for the tuner's run after it,
	// then returns the runtime's target.
	collect := func() int {
		t.Helper()
		n := tu.runs.Load()
		goruntime.GC()
		for deadline := time.Now().Add(5 * time.Second); tu.runs.Load() == n; {
			if time.Now().After(deadline) {
				t.Fatal("the tuner did not run after a collection")
			}
			time.Sleep(time.Millisecond)
		}
		p := debug.SetGCPercent(int(tu.last.Load()))
		if int64(p) != tu.last.Load() {
			t.Errorf("runtime's GC percent %d, the tuner's last %d", p, tu.last.Load())
		}
		return p
	}
	big := make([]*[1 << 20]byte, 48)
	for i := range big {
		big[i] = new([1 << 20]byte)
	}
	if p := collect(); p != 100 {
		t.Errorf("GC percent %d with 48 MiB live, want 100", p)
	}
	goruntime.KeepAlive(big)
	big = nil
	collect() // the collection that frees them sets the target before it knows
	if p := collect(); p <= 100 {
		t.Errorf("GC percent %d with a small live heap, want more than 100", p)
	}
	// Several collections: the tuner keeps running.
	for range 3 {
		collect()
	}
}

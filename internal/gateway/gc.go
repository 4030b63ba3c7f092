package gateway

import (
	"os"
	goruntime "runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The garbage collector's target in the gateway process: Go's GOGC=100,
// but never less than gcMinHeadroom of heap between collections.
//
// Why: a handshake allocates (crypto/tls: transcript hashes, AES-GCM, the
// session ticket; ~80 KiB a full one) while the live heap of a gateway
// holding few connections is small (1-2 MiB under the handshake
// benchmarks), so with GOGC=100 the heap goal is the runtime's minimum,
// 4 MiB, and the collector ran every ~2.5 MiB allocated: 11.9% of the
// gateway's CPU under resumed handshakes (docs/benchmarks.md, "A heap
// headroom floor for the gateway"). GOGC=400 everywhere would cut that
// but would also let a gateway holding 5,000 idle connections (~80 MiB
// live) grow to five times its live heap while they are opened, instead
// of twice.
//
// So after each collection the target is set from the live heap it
// found: 100 * gcMinHeadroom / live, at least 100 and at most
// gcMaxPercent. Below 4 MiB live the goal is 16-20 MiB (five times the
// live heap, at least the runtime's minimum heap at 400, 16 MiB); from 4
// to 16 MiB live it is about live + 16 MiB; above 16 MiB live it is Go's
// default, twice the live heap. The heap goal is so at most 12 MiB above
// Go's default at any size, and the same once the live heap passes 16 MiB
// (many open connections). The same idea as a memory ballast or the GC
// tuners in use elsewhere (e.g. bytedance/gopkg's gctuner), without a
// ballast. Measured against GOGC=100: 146 collections instead of ~950
// under the same handshake load, 1-3% more handshakes per CPU-second on
// a quiet machine (more under contention), the same idle and peak memory
// per connection at 5,000 and 19,900 connections, and 12 MiB more RSS
// for a gateway with a small live heap under load (53.6 against 41.8 MiB).
//
// GOGC in the environment turns this off: the runtime's value is kept,
// like GOMEMLIMIT, which also still bounds the heap with the tuner on.
const (
	gcMinHeadroom = 16 << 20
	gcMaxPercent  = 400
)

// gcPercentFor is the target for a live heap of live bytes.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := 100 * uint64(gcMinHeadroom) / live
	return int(min(max(p, 100), gcMaxPercent))
}

// SetGCDefault starts the tuner described above, unless the GOGC
// environment variable is set, and reports whether it did. Call it once,
// from the gateway's process (not a library's concern: the target is the
// process's).
func SetGCDefault() bool {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return false
	}
	startGCTuner()
	return true
}

// gcTuner sets the collector's target after each collection; only the
// finalizer goroutine runs it after the first call.
type gcTuner struct {
	sample  []metrics.Sample
	last    atomic.Int64 // the target set last, -1 before
	runs    atomic.Int64 // for tests
	stopped atomic.Bool  // for tests: no more runs after the next
}

func startGCTuner() *gcTuner {
	t := &gcTuner{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.last.Store(-1)
	t.tune()
	t.watch()
	return t
}

// tune sets the target for the live heap of the last collection (before
// the first, the runtime reports 0: gcMaxPercent, the goal its 16 MiB
// minimum).
func (t *gcTuner) tune() {
	metrics.Read(t.sample)
	var live uint64
	if v := t.sample[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	if p := int64(gcPercentFor(live)); p != t.last.Load() {
		debug.SetGCPercent(int(p))
		t.last.Store(p)
	}
	t.runs.Add(1)
}

// gcCycle is an object whose finalizer runs once after each collection
// (it is unreachable from the start; the finalizer makes the next one). It
// holds a pointer so that the tiny allocator does not batch it with other
// objects, which would delay its finalizer.
type gcCycle struct{ _ *gcTuner }

func (t *gcTuner) watch() {
	goruntime.SetFinalizer(&gcCycle{}, func(*gcCycle) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.watch()
	})
}

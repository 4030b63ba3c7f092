package ratelimit

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// TestBurstThenRefused: an identity gets its burst, then a refusal with
// the time until the next token; another identity has its own bucket; an
// override applies to the identities it matches; tokens come back with
// time.
func TestBurstThenRefused(t *testing.T) {
	l, err := New(Policy{Default: Limit{RPS: 2, Burst: 3}, Overrides: []Override{
		{Identities: []string{"spiffe://example.org/svc/batch/*"}, Limit: Limit{RPS: 100, Burst: 10}},
	}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := "spiffe://example.org/svc/a"
	for i := range 3 {
		if d := l.Allow(a, t0); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 2-i)
		}
	}
	d := l.Allow(a, t0)
	if d.Allowed || d.RetryAfter != 500*time.Millisecond || d.Limit != (Limit{2, 3}) {
		t.Fatalf("4th request: %+v, want refused, retry after 500ms", d)
	}
	if d := l.Allow("spiffe://example.org/svc/b", t0); !d.Allowed {
		t.Fatalf("another identity refused: %+v", d)
	}
	if d := l.Allow(a, t0.Add(500*time.Millisecond)); !d.Allowed {
		t.Fatalf("after 500ms: %+v, want allowed", d)
	}
	batch := "spiffe://example.org/svc/batch/x"
	for i := range 10 {
		if d := l.Allow(batch, t0); !d.Allowed {
			t.Fatalf("override request %d refused: %+v", i, d)
		}
	}
	if d := l.Allow(batch, t0); d.Allowed || d.Limit != (Limit{100, 10}) || d.RetryAfter != 10*time.Millisecond {
		t.Fatalf("11th override request: %+v", d)
	}
}

// TestMemoryBounded: 100,000 distinct identities leave at most
// MaxIdentities buckets; identities whose buckets refilled are forgotten
// first, so a busy identity keeps its (empty) bucket.
func TestMemoryBounded(t *testing.T) {
	l, err := New(Policy{Default: Limit{RPS: 1, Burst: 2}}, 6400)
	if err != nil {
		t.Fatal(err)
	}
	busy := "spiffe://example.org/svc/busy"
	l.Allow(busy, t0)
	l.Allow(busy, t0)
	for i := range 100000 {
		// Each identity calls once, a second apart from the one 1,000
		// before: by then its bucket refilled.
		at := t0.Add(time.Duration(i/1000) * 2 * time.Second)
		l.Allow(fmt.Sprintf("spiffe://example.org/svc/c%d", i), at)
		if i%1000 == 0 {
			l.Allow(busy, at) // stays empty: 1 token a second, one call every 2 s takes it
		}
	}
	n, early := l.Stats()
	if n > 6400 {
		t.Errorf("%d buckets, want at most 6400", n)
	}
	t.Logf("%d buckets, %d evicted before they refilled", n, early)
	// A full shard looks at 16 buckets for a refilled one; all 16 being
	// from the current second is rare (about 1 in 10^13 evictions; with 8
	// it happened about 30 times in this run).
	if early > 5 {
		t.Errorf("%d buckets evicted before they refilled; want about none when the callers of a refill time fit", early)
	}
}

func TestNewRefusesBadLimits(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{Default: Limit{RPS: 0, Burst: 1}}, "ratelimit: requests_per_second must be positive, got 0"},
		{Policy{Default: Limit{RPS: 1, Burst: 0}}, "ratelimit: burst must be at least 1, got 0"},
		{Policy{Default: Limit{RPS: 1, Burst: 1}, Overrides: []Override{{Identities: []string{"nope"}, Limit: Limit{1, 1}}}},
			`ratelimit: override 0: authz: invalid SPIFFE ID "nope": must start with spiffe://`},
	} {
		if _, err := New(tc.p, 0); err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
}

// BenchmarkAllow: the cost of a decision and the heap the buckets take,
// for one identity (the baseline), and for 100,000 distinct identities
// with the table bounded at 10,000 and at 100,000 buckets.
func BenchmarkAllow(b *testing.B) {
	ids := make([]string, 100000)
	for i := range ids {
		ids[i] = fmt.Sprintf("spiffe://example.org/svc/client-%06d", i)
	}
	for _, bc := range []struct {
		name     string
		distinct int
		max      int
	}{{"one-identity", 1, 100000}, {"100k-identities/max-10k", 100000, 10000}, {"100k-identities/max-100k", 100000, 100000}} {
		b.Run(bc.name, func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			l, _ := New(Policy{Default: Limit{RPS: 1e6, Burst: 1000}}, bc.max)
			now := t0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Allow(ids[i%bc.distinct], now)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			n, _ := l.Stats()
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MiB")
			b.ReportMetric(float64(n), "buckets")
			runtime.KeepAlive(l)
		})
	}
}

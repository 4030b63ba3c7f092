package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/certgate/certgate/internal/authz"
)

// Limit is a token bucket: RPS tokens a second, at most Burst at once.
type Limit struct {
	RPS   float64
	Burst int
}

// Override is a limit for the identities an allow-style pattern list
// matches (exact SPIFFE IDs, or patterns ending in "/*").
type Override struct {
	Identities []string
	Limit      Limit
}

// Policy is a route's rate limit.
type Policy struct {
	Default   Limit
	Overrides []Override // the first match wins
}

// DefaultMaxIdentities bounds the buckets of one route.
const DefaultMaxIdentities = 100000

const (
	numShards = 64
	// evictScan is how many buckets a full shard looks at for one that
	// has refilled before it evicts one that has not.
	evictScan = 16
)

type override struct {
	rule  authz.Rule
	limit Limit
}

// Limiter holds the buckets of one route.
type Limiter struct {
	def       Limit
	overrides []override
	perShard  int
	seed      maphash.Seed
	shards    [numShards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	evicted uint64
}

type bucket struct {
	lim   *rate.Limiter
	limit Limit
}

// New builds a Limiter for p keeping at most maxIdentities buckets
// (DefaultMaxIdentities if zero).
func New(p Policy, maxIdentities int) (*Limiter, error) {
	if err := checkLimit(p.Default); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	if maxIdentities <= 0 {
		maxIdentities = DefaultMaxIdentities
	}
	l := &Limiter{def: p.Default, perShard: max(1, maxIdentities/numShards), seed: maphash.MakeSeed()}
	for i, o := range p.Overrides {
		r, err := authz.NewRule(o.Identities)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: override %d: %w", i, err)
		}
		if err := checkLimit(o.Limit); err != nil {
			return nil, fmt.Errorf("ratelimit: override %d: %w", i, err)
		}
		l.overrides = append(l.overrides, override{r, o.Limit})
	}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l, nil
}

func checkLimit(l Limit) error {
	switch {
	case !(l.RPS > 0) || math.IsInf(l.RPS, 0):
		return fmt.Errorf("requests_per_second must be positive, got %v", l.RPS)
	case l.Burst < 1:
		return fmt.Errorf("burst must be at least 1, got %d", l.Burst)
	}
	return nil
}

// LimitFor returns the limit that applies to identity id.
func (l *Limiter) LimitFor(id string) Limit {
	for i := range l.overrides {
		if _, ok := l.overrides[i].rule.Match(id); ok {
			return l.overrides[i].limit
		}
	}
	return l.def
}

// Decision is the answer for one request.
type Decision struct {
	Allowed bool
	Limit   Limit
	// Remaining is the whole requests left in the bucket after this one.
	Remaining int
	// RetryAfter is how long until a request would be allowed (refused
	// requests only).
	RetryAfter time.Duration
}

// Allow takes one token from id's bucket at now.
func (l *Limiter) Allow(id string, now time.Time) Decision {
	sh := &l.shards[maphash.String(l.seed, id)%numShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[id]
	if b == nil {
		lim := l.LimitFor(id)
		if len(sh.buckets) >= l.perShard {
			sh.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(lim.RPS), lim.Burst), limit: lim}
		sh.buckets[id] = b
	}
	d := Decision{Limit: b.limit}
	if b.lim.AllowN(now, 1) {
		d.Allowed = true
		d.Remaining = int(math.Floor(b.lim.TokensAt(now)))
		return d
	}
	missing := 1 - b.lim.TokensAt(now)
	d.RetryAfter = time.Duration(math.Ceil(missing / b.limit.RPS * float64(time.Second)))
	return d
}

// evict removes one bucket from a full shard: a refilled one if one of
// the first evictScan looked at is, else the first looked at.
func (sh *shard) evict(now time.Time) {
	var victim string
	n := 0
	for id, b := range sh.buckets {
		if n == 0 {
			victim = id
		}
		if b.lim.TokensAt(now) >= float64(b.limit.Burst) {
			delete(sh.buckets, id)
			return
		}
		n++
		if n == evictScan {
			break
		}
	}
	delete(sh.buckets, victim)
	sh.evicted++
}

// Stats returns the buckets held and how many were evicted before they
// refilled (each let its identity start again with a full burst).
func (l *Limiter) Stats() (buckets int, evictedEarly uint64) {
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		buckets += len(sh.buckets)
		evictedEarly += sh.evicted
		sh.mu.Unlock()
	}
	return buckets, evictedEarly
}

package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/wire"
)

// StormLoad configures a renewal storm.
type StormLoad struct {
	ServerURL string
	Roots     *x509.CertPool
	// Window is the span over which the renewals are spread: each agent
	// renews once, at a moment drawn uniformly at random in [0, Window).
	// 60 s if zero.
	Window time.Duration
	// Resume makes each renewal resume the agent's session (see
	// [WarmSessions]); full handshakes otherwise.
	Resume    bool
	Timeout   time.Duration // per renewal; 30 s if zero
	Clock     clock.Clock   // clock.Real{} if nil; measures, does not schedule
	ServerCPU func() (time.Duration, error)
	// Rand draws the moments; a randomly seeded source if nil.
	Rand *rand.Rand
}

// RunStorm makes every agent renew once at its own random moment of the
// window, as a fleet of agents whose renewal times happen to bunch up
// would: a renewal starts at its moment whatever is still in flight, so
// concurrency is whatever the server's speed makes it (EnrollResult.Clients is
// the peak). It returns when every renewal has been answered. If ctx ends,
// no further renewal starts and ctx's error is returned with what was
// measured.
func Storm(ctx context.Context, o StormLoad, agents []*Agent) (*RenewResult, error) {
	if len(agents) == 0 {
		return nil, errors.New("bench: no agents to renew")
	}
	if o.Window == 0 {
		o.Window = 60 * time.Second
	}
	if o.Window < 0 {
		return nil, fmt.Errorf("bench: window %s is negative", o.Window)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	rn, err := renewerFor(o.ServerURL, o.Roots, o.Timeout, o.Resume, agents)
	if err != nil {
		return nil, err
	}
	type slot struct {
		at  time.Duration
		req []byte
		a   *Agent
	}
	slots := make([]slot, len(agents))
	for i, a := range agents {
		slots[i] = slot{at: time.Duration(o.Rand.Int64N(int64(o.Window))), req: rn.request(http.MethodPost, wire.PathRenew, a.Body), a: a}
	}
	slices.SortFunc(slots, func(x, y slot) int { return int(x.at - y.at) })

	res := &RenewResult{Resume: o.Resume, Window: o.Window}
	var (
		mu       sync.Mutex
		rec      = newRecorder()
		resumed  int
		inFlight atomic.Int64
		peak     atomic.Int64
		wg       sync.WaitGroup
	)
	res.Elapsed, res.ServerCPU, err = measure(o.Clock, o.ServerCPU, func(time.Time) {
		wall := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
	dispatch:
		for _, s := range slots {
			if wait := time.Until(wall.Add(s.at)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break dispatch
				}
			}
			if ctx.Err() != nil {
				break
			}
			n := inFlight.Add(1)
			for {
				pk := peak.Load()
				if n <= pk || peak.CompareAndSwap(pk, n) {
					break
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer inFlight.Add(-1)
				t0 := o.Clock.Now()
				didResume, kind, msg := rn.renew(ctx, s.a, s.req)
				lat := o.Clock.Now().Sub(t0)
				mu.Lock()
				defer mu.Unlock()
				rec.add(lat, kind, msg, ctx.Err() != nil)
				if didResume {
					resumed++
				}
			}()
		}
		wg.Wait()
	})
	if err != nil {
		return nil, err
	}
	res.record(rec)
	res.Resumed = resumed
	res.Clients = int(peak.Load())
	return res, ctx.Err()
}

// Print writes the figures in plain words.
func (r *RenewResult) Print(w io.Writer) error {
	var b strings.Builder
	mode := "full handshake"
	if r.Resume {
		mode = "resumed TLS session"
	}
	if r.Window > 0 {
		fmt.Fprintf(&b, "storm        %d agents, each renewing once at a random moment of %s\n", r.Sent, r.Window)
	}
	fmt.Fprintf(&b, "renewals     %d sent, %d ok, %d failed in %s\n", r.Sent, r.OK, r.Failed(), r.Elapsed.Round(time.Millisecond))
	if r.Window > 0 {
		fmt.Fprintf(&b, "connections  one per renewal, %s expected (%d resumed), %d in flight at the peak\n", mode, r.Resumed, r.Clients)
	} else {
		fmt.Fprintf(&b, "connections  one per renewal, %s expected (%d resumed), %d renewals in flight\n", mode, r.Resumed, r.Clients)
	}
	f := figures{noun: "renewal", latencyNote: " (dial to answer)", ok: r.OK, elapsed: r.Elapsed, serverCPU: r.ServerCPU, latency: r.Latency, errors: r.Errors, samples: r.ErrorSamples}
	return f.print(w, b.String())
}

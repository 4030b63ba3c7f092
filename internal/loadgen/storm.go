package loadgen

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
)

// StormOptions configures a renewal storm.
type StormOptions struct {
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
// concurrency is whatever the server's speed makes it (Result.Clients is
// the peak). It returns when every renewal has been answered. If ctx ends,
// no further renewal starts and ctx's error is returned with what was
// measured.
func RunStorm(ctx context.Context, o StormOptions, agents []*Agent) (*RenewResult, error) {
	if len(agents) == 0 {
		return nil, errors.New("loadgen: no agents to renew")
	}
	if o.Window == 0 {
		o.Window = 60 * time.Second
	}
	if o.Window < 0 {
		return nil, fmt.Errorf("loadgen: window %s is negative", o.Window)
	}
	if o.Resume && agents[0].Sessions == nil {
		return nil, errors.New("loadgen: resumed mode needs WarmSessions first")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Rand == nil {
		o.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	rn, err := newRenewer(o.ServerURL, o.Roots, o.Timeout)
	if err != nil {
		return nil, err
	}
	if !o.Resume {
		for _, a := range agents {
			a.Sessions = nil
		}
	}
	type slot struct {
		at  time.Duration
		req []byte
		a   *Agent
	}
	slots := make([]slot, len(agents))
	for i, a := range agents {
		slots[i] = slot{at: time.Duration(o.Rand.Int64N(int64(o.Window))), req: rn.request(http.MethodPost, "/v1/renew", a.Body), a: a}
	}
	slices.SortFunc(slots, func(x, y slot) int { return int(x.at - y.at) })

	res := newRenewResult(o.Resume, 0)
	res.Window = o.Window
	var (
		mu       sync.Mutex
		p        = &part{errors: map[string]int{}, samples: map[string]string{}}
		resumed  int
		inFlight atomic.Int64
		peak     atomic.Int64
		wg       sync.WaitGroup
		cpu0     time.Duration
	)
	if o.ServerCPU != nil {
		if cpu0, err = o.ServerCPU(); err != nil {
			return nil, err
		}
	}
	start := o.Clock.Now()
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
			p.add(lat, kind, msg, ctx.Err() != nil)
			if didResume {
				resumed++
			}
		}()
	}
	wg.Wait()
	res.Elapsed = o.Clock.Now().Sub(start)
	if o.ServerCPU != nil {
		cpu1, err := o.ServerCPU()
		if err != nil {
			return nil, err
		}
		res.ServerCPU = cpu1 - cpu0
	}
	res.merge(p)
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
	fmt.Fprintf(&b, "rate         %.1f renewals/s\n", r.Rate())
	if r.ServerCPU > 0 && r.OK > 0 {
		fmt.Fprintf(&b, "server CPU   %s, %.0f%% of one core: %s per renewal, %.0f renewals per CPU-second\n",
			r.ServerCPU.Round(10*time.Millisecond), 100*r.ServerCPU.Seconds()/r.Elapsed.Seconds(),
			round(r.ServerCPU/time.Duration(r.OK)), float64(r.OK)/r.ServerCPU.Seconds())
	}
	l := r.Latency
	fmt.Fprintf(&b, "latency      p50 %s  p90 %s  p99 %s  max %s  mean %s (dial to answer)\n",
		round(l.Quantile(0.50)), round(l.Quantile(0.90)), round(l.Quantile(0.99)), round(l.Max()), round(l.Mean()))
	if l.Count() > 0 {
		b.WriteString("histogram (successful renewals)\n")
		l.Print(&b)
	}
	if len(r.Errors) > 0 {
		b.WriteString("errors\n")
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %-24s %8d  e.g. %s\n", k, r.Errors[k], r.ErrorSamples[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

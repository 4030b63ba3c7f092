package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
)

// This file holds what the enrollment run, the renewal run and the storm
// share: checking the common options, timing the measurement, the worker
// loop, collecting outcomes and printing the figures.

// checkLoad defaults *clients to 32 and rejects a negative client count or
// duration.
func checkLoad(clients *int, d time.Duration) error {
	if *clients == 0 {
		*clients = 32
	}
	if *clients < 0 {
		return fmt.Errorf("bench: clients %d: need at least one", *clients)
	}
	if d < 0 {
		return fmt.Errorf("bench: duration %s is negative", d)
	}
	return nil
}

// recorder collects the outcomes of operations: counts, the latency of the
// successful ones, and failures by kind with one message of each.
type recorder struct {
	sent, ok int
	latency  Histogram
	errors   map[string]int
	samples  map[string]string
}

func newRecorder() *recorder {
	return &recorder{errors: map[string]int{}, samples: map[string]string{}}
}

// add records one operation's outcome: kind "" is a success, else the kind
// of failure (KindCancelled if the run was cancelled) and its message.
func (r *recorder) add(lat time.Duration, kind, msg string, cancelled bool) {
	r.sent++
	if kind == "" {
		r.ok++
		r.latency.Add(lat)
		return
	}
	if cancelled {
		kind = KindCancelled
	}
	r.errors[kind]++
	if _, ok := r.samples[kind]; !ok {
		r.samples[kind] = msg
	}
}

// merge adds o's outcomes to r's; r keeps its own sample of a kind both have.
func (r *recorder) merge(o *recorder) {
	r.sent += o.sent
	r.ok += o.ok
	r.latency.Merge(&o.latency)
	for k, n := range o.errors {
		r.errors[k] += n
		if _, ok := r.samples[k]; !ok {
			r.samples[k] = o.samples[k]
		}
	}
}

// measure reads the server's CPU time (if serverCPU is set), runs run with
// the start of the measurement, and returns the time run took and the CPU
// time the server used meanwhile.
func measure(clk clock.Clock, serverCPU func() (time.Duration, error), run func(start time.Time)) (elapsed, cpu time.Duration, err error) {
	var cpu0 time.Duration
	if serverCPU != nil {
		if cpu0, err = serverCPU(); err != nil {
			return 0, 0, err
		}
	}
	start := clk.Now()
	run(start)
	elapsed = clk.Now().Sub(start)
	if serverCPU != nil {
		cpu1, err := serverCPU()
		if err != nil {
			return 0, 0, err
		}
		cpu = cpu1 - cpu0
	}
	return elapsed, cpu, nil
}

// pull runs workers goroutines, each taking the next of n items in turn
// until all are taken, d (if positive) has passed since start, or ctx
// ends. do sends item i as worker w and returns its outcome (see
// [recorder.add]), timed with clk. It returns the outcomes of all workers.
func pull(ctx context.Context, clk clock.Clock, start time.Time, d time.Duration, workers, n int, do func(w, i int) (kind, msg string)) *recorder {
	recs := make([]*recorder, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range recs {
		rec := newRecorder()
		recs[w] = rec
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if d > 0 && clk.Now().Sub(start) >= d {
					return
				}
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := clk.Now()
				kind, msg := do(w, int(i))
				rec.add(clk.Now().Sub(t0), kind, msg, ctx.Err() != nil)
			}
		}()
	}
	wg.Wait()
	all := newRecorder()
	for _, rec := range recs {
		all.merge(rec)
	}
	return all
}

// perSecond is ok operations over elapsed, per second; 0 if nothing elapsed.
func perSecond(ok int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(ok) / elapsed.Seconds()
}

// figures are the lines every run prints after its own: rate, server CPU,
// latency, histogram and errors.
type figures struct {
	noun        string // one operation: "enrollment", "renewal"
	latencyNote string // appended to the latency line
	ok          int
	elapsed     time.Duration
	serverCPU   time.Duration
	latency     *Histogram
	errors      map[string]int
	samples     map[string]string
}

func (f figures) write(b *strings.Builder) {
	fmt.Fprintf(b, "rate         %.1f %ss/s\n", perSecond(f.ok, f.elapsed), f.noun)
	if f.serverCPU > 0 && f.ok > 0 {
		fmt.Fprintf(b, "server CPU   %s, %.0f%% of one core: %s per %s, %.0f %ss per CPU-second\n",
			f.serverCPU.Round(10*time.Millisecond), 100*f.serverCPU.Seconds()/f.elapsed.Seconds(),
			round(f.serverCPU/time.Duration(f.ok)), f.noun, float64(f.ok)/f.serverCPU.Seconds(), f.noun)
	}
	l := f.latency
	fmt.Fprintf(b, "latency      p50 %s  p90 %s  p99 %s  max %s  mean %s%s\n",
		round(l.Quantile(0.50)), round(l.Quantile(0.90)), round(l.Quantile(0.99)), round(l.Max()), round(l.Mean()), f.latencyNote)
	if l.Count() > 0 {
		fmt.Fprintf(b, "histogram (successful %ss)\n", f.noun)
		l.Print(b)
	}
	if len(f.errors) > 0 {
		b.WriteString("errors\n")
		kinds := make([]string, 0, len(f.errors))
		for k := range f.errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(b, "  %-24s %8d  e.g. %s\n", k, f.errors[k], f.samples[k])
		}
	}
}

// print writes head, then the figures, to w in one write.
func (f figures) print(w io.Writer, head string) error {
	var b strings.Builder
	b.WriteString(head)
	f.write(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/metrics"
	"time"
)

// The baseline's metrics listener (`certgate bench baseline --metrics`):
// the runtime/metrics the idle-connection benchmark reads, in Prometheus
// text under the names the Prometheus Go collector gives them on the
// gateway's metrics listener. Not the collector itself: the bench side
// links no database/sql, which client_golang's collectors package does.

// runtimeGauges maps each exposed name to the runtime/metrics samples it
// adds up (a negative weight subtracts).
var runtimeGauges = []struct {
	name    string
	samples []string
	weights []float64
}{
	{"go_memstats_heap_inuse_bytes", []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}, []float64{1, 1}},
	{"go_memstats_heap_alloc_bytes", []string{"/memory/classes/heap/objects:bytes"}, []float64{1}},
	{"go_memstats_stack_inuse_bytes", []string{"/memory/classes/heap/stacks:bytes"}, []float64{1}},
	{"go_memstats_sys_bytes", []string{"/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}, []float64{1, -1}},
	{"go_goroutines", []string{"/sched/goroutines:goroutines"}, []float64{1}},
}

func writeRuntimeMetrics(w http.ResponseWriter, _ *http.Request) {
	var samples []metrics.Sample
	for _, g := range runtimeGauges {
		for _, n := range g.samples {
			samples = append(samples, metrics.Sample{Name: n})
		}
	}
	metrics.Read(samples)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	i := 0
	for _, g := range runtimeGauges {
		var v float64
		for j := range g.samples {
			v += g.weights[j] * float64(samples[i].Value.Uint64())
			i++
		}
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", g.name, g.name, v)
	}
}

// serveRuntimeMetrics serves /metrics at addr until ctx ends.
func serveRuntimeMetrics(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", writeRuntimeMetrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	return nil
}

package bench

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// TestIdleAgainstBareBaseline holds 40 connections open at the bare
// baseline (in this process) and reads this process's memory and the
// baseline's runtime metrics.
func TestIdleAgainstBareBaseline(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)
	srvCert, srvKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/bench")).WriteFiles(t, dir, "server")
	cliCert, cliKey := ca.Issue(t, testca.WithID("spiffe://example.org/svc/bench")).WriteFiles(t, dir, "client")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServeBaseline(ctx, BaselineOptions{Listen: "127.0.0.1:0", Cert: srvCert, Key: srvKey, Bundle: bundle, Bare: true, Metrics: metricsAddr},
			func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := RunIdle(ctx, IdleOptions{
		Addr: addr, Name: "bare", ServerPID: os.Getpid(), MetricsURL: "http://" + metricsAddr + "/metrics",
		Cert: cliCert, Key: cliKey, CACert: bundle, ServerName: "localhost", Curve: "P256", Path: "/x",
		Conns: 40, Concurrency: 4, Settle: 10 * time.Millisecond, Timeout: 2 * time.Minute, Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// Server and client share this process: 80 more open files, and at
	// least 40 more goroutines (one per server connection).
	if res.Conns != 40 || res.RSSBefore <= 0 || res.RSSAfter <= 0 || res.FDsAfter-res.FDsBefore < 80 {
		t.Fatalf("result %+v\n%s", res, out.String())
	}
	if g, ok := res.RuntimePerConn("go_goroutines"); !ok || g < 1 {
		t.Fatalf("goroutines per connection %v, %v\n%s", g, ok, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(lines[0], "bare: 40 connections open and answered in ") || !strings.HasPrefix(last, "idle-result name=bare conns=40 rss_kib=") ||
		!strings.Contains(last, " memstats_stack_inuse_bytes=") || !strings.Contains(last, " goroutines=") || len(lines) != 8 {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestIdleOptionsRefused(t *testing.T) {
	good := IdleOptions{Addr: "127.0.0.1:1", ServerPID: os.Getpid(), Cert: "c", Key: "k", Curve: "P256", Conns: 1, Concurrency: 1, Timeout: time.Second}
	for _, c := range []struct {
		o    IdleOptions
		want string
	}{
		{with(good, func(o *IdleOptions) { o.Addr = "" }), "--addr: no address given"},
		{with(good, func(o *IdleOptions) { o.ServerPID = 0 }), "--server-pid: the server's process ID is required (its memory is what is measured)"},
		{with(good, func(o *IdleOptions) { o.ServerPID = -1 }), "--server-pid: bench: memory of process -1: open /proc/-1/status: no such file or directory"},
		{with(good, func(o *IdleOptions) { o.Conns = 0 }), "--conns: must be at least 1, got 0"},
		{with(good, func(o *IdleOptions) { o.Curve = "P384" }), `--curve: unknown group "P384" (P256, X25519, X25519MLKEM768)`},
		{with(good, func(o *IdleOptions) { o.MetricsURL = "https://x/metrics" }), `--metrics: "https://x/metrics" is not an http:// URL`},
		{with(good, func(o *IdleOptions) { o.Timeout = 0 }), "--timeout: must be positive, got 0s"},
	} {
		_, err := RunIdle(context.Background(), c.o)
		if err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
}

func TestParseRSS(t *testing.T) {
	n, err := parseRSS(7, "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads:\t1\n")
	if err != nil || n != 2048<<10 {
		t.Fatalf("%d, %v", n, err)
	}
	if _, err := parseRSS(7, "Name:\tx\n"); err == nil || err.Error() != "bench: memory of process 7: no VmRSS in /proc/7/status" {
		t.Fatal(err)
	}
	if _, err := parseRSS(7, "VmRSS:\t 12 MB\n"); err == nil || err.Error() != `bench: memory of process 7: VmRSS line "VmRSS:\t 12 MB" does not parse` {
		t.Fatal(err)
	}
	if n, err := parseStatusKB(7, "VmPeak:\t  100 kB\nVmHWM:\t  4096 kB\nVmRSS:\t   2048 kB\n", "VmHWM"); err != nil || n != 4096<<10 {
		t.Fatalf("VmHWM: %d, %v", n, err)
	}
}

func TestParseGoGauges(t *testing.T) {
	m, err := parseGoGauges(strings.NewReader("# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 12\n" +
		"go_gc_duration_seconds{quantile=\"0\"} 1e-05\ngo_memstats_heap_inuse_bytes 4.2e+06\nprocess_open_fds 9\n"))
	if err != nil || len(m) != 2 || m["go_goroutines"] != 12 || m["go_memstats_heap_inuse_bytes"] != 4.2e6 {
		t.Fatalf("%v, %v", m, err)
	}
	if _, err := parseGoGauges(strings.NewReader("go_goroutines twelve\n")); err == nil || !strings.HasPrefix(err.Error(), `sample "go_goroutines twelve": strconv.ParseFloat`) {
		t.Fatal(err)
	}
}

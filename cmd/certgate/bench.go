package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/loadgen"
	"github.com/certgate/certgate/internal/pemutil"
)

func newBenchCmd(s streams) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench --addr HOST:PORT --cert C --key K [--compare HOST:PORT] [--server-pid PID --compare-pid PID]",
		Short: "Load-test an mTLS endpoint: full handshakes, resumed handshakes or keep-alive requests per second",
		Long: `Load-test an mTLS endpoint with a client certificate. Modes:
  full       a new connection and full handshake per request
  resumed    a new connection resuming a TLS session per request
  keepalive  requests on --concurrency long-lived connections
With --compare the same load runs against a second address in the same run,
with the same client certificate, TLS version and key-exchange group, and
the ratio --addr/--compare is printed per mode. --rounds N repeats the
comparison N times, alternating which target goes first, and prints the
median ratio.

With --server-pid (and --compare-pid) naming the server processes on this
machine (Linux), each row also gives the server's CPU time over the
measurement (from /proc/PID/stat), its share of one core, and operations per
server CPU-second: the server's cost per operation, which holds even when
the load generator, not the server, limits the rate. Pin the servers and
the load generator to different cores (taskset -c 0 certgate gateway ...;
taskset -c 1 certgate bench ...). 'certgate bench baseline' runs the bare
crypto/tls + httputil.ReverseProxy baseline, 'certgate bench upstream' a
plain HTTP upstream; scripts/bench-gateway.sh runs the whole comparison.

The client is kept cheap so that it loads the server, not itself: its
certificate is parsed once; with --cacert the server's chain is verified on
the first handshake and its leaf then pinned (a different leaf is verified
in full again); without --cacert the server's certificate is NOT verified
(InsecureSkipVerify): use that only against servers on this machine. A
full handshake still costs the client one key exchange, one signature and
one verification of the server's signature.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd.Context(), s.out, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "", "address to load")
	f.StringVar(&o.compare, "compare", "", "second address to load with the same client, for comparison")
	f.StringSliceVar(&o.names, "names", nil, "names of --addr and --compare in the output, e.g. gateway,baseline (default: the addresses)")
	f.IntVar(&o.serverPID, "server-pid", 0, "process ID of the server at --addr: report its CPU time (Linux)")
	f.IntVar(&o.comparePID, "compare-pid", 0, "process ID of the server at --compare: report its CPU time (Linux)")
	f.StringVar(&o.cert, "cert", "", "client certificate chain PEM")
	f.StringVar(&o.key, "key", "", "client key PEM")
	f.StringVar(&o.cacert, "cacert", "", "roots that verify the server once per target (default: the server is not verified)")
	f.StringVar(&o.serverName, "server-name", "localhost", "name to verify in the server certificate (with --cacert)")
	f.StringVar(&o.curve, "curve", "P256", "key-exchange group the client offers: P256, X25519 or X25519MLKEM768")
	f.StringSliceVar(&o.modes, "mode", []string{"full", "resumed", "keepalive"}, "modes to run: full, resumed, keepalive")
	f.StringVar(&o.path, "path", "/", "request path")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "measured duration of each run")
	f.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each run (fills caches and the session cache)")
	f.IntVar(&o.concurrency, "concurrency", 16, "concurrent connections")
	f.IntVar(&o.rounds, "rounds", 1, "times to run every mode against every target, alternating the order")
	cmd.AddCommand(newBenchBaselineCmd(s), newBenchUpstreamCmd(s), newBenchEnrollCmd(s), newBenchRevokeCmd(s), newBenchRenewCmd(s), newBenchStormCmd(s))
	return cmd
}

type benchOptions struct {
	addr, compare, cert, key, cacert, serverName, path, curve string
	names, modes                                              []string
	serverPID, comparePID                                     int
	duration, warmup                                          time.Duration
	concurrency, rounds                                       int
}

// benchTarget is one server under load.
type benchTarget struct {
	name, addr string
	pid        int // 0: CPU time not measured
}

type benchResult struct {
	ops, errs  int64
	notResumed int64 // resumed mode: connections that did a full handshake
	elapsed    time.Duration
	serverCPU  time.Duration // 0 when not measured
	p50, p99   time.Duration
	params     string // see tlsParams
	firstErr   error
}

func (r benchResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// perCPU is operations per server CPU-second, 0 when not measured.
func (r benchResult) perCPU() float64 {
	if r.serverCPU <= 0 {
		return 0
	}
	return float64(r.ops) / r.serverCPU.Seconds()
}

var benchCurves = map[string]tls.CurveID{"P256": tls.CurveP256, "X25519": tls.X25519, "X25519MLKEM768": tls.X25519MLKEM768}

func checkBenchOptions(o *benchOptions) error {
	switch {
	case o.addr == "":
		return errors.New("--addr: no address given")
	case o.cert == "" || o.key == "":
		return errors.New("--cert, --key: a client certificate and key are required")
	case o.concurrency < 1:
		return fmt.Errorf("--concurrency: must be at least 1, got %d", o.concurrency)
	case o.duration <= 0:
		return fmt.Errorf("--duration: must be positive, got %s", o.duration)
	case o.warmup < 0:
		return fmt.Errorf("--warmup: must not be negative, got %s", o.warmup)
	case o.rounds < 1 || o.rounds > 100:
		return fmt.Errorf("--rounds: must be 1 to 100, got %d", o.rounds)
	case o.comparePID != 0 && o.compare == "":
		return errors.New("--compare-pid: no --compare address given")
	case len(o.names) != 0 && len(o.names) != 1+btoi(o.compare != ""):
		return fmt.Errorf("--names: %d names for %d targets", len(o.names), 1+btoi(o.compare != ""))
	}
	if _, ok := benchCurves[o.curve]; !ok {
		return fmt.Errorf("--curve: unknown group %q (P256, X25519, X25519MLKEM768)", o.curve)
	}
	for _, m := range o.modes {
		if !slices.Contains([]string{"full", "resumed", "keepalive"}, m) {
			return fmt.Errorf("--mode: unknown mode %q (full, resumed, keepalive)", m)
		}
	}
	for flag, pid := range map[string]int{"--server-pid": o.serverPID, "--compare-pid": o.comparePID} {
		if pid == 0 {
			continue
		}
		if _, err := loadgen.ProcessCPU(pid); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func runBench(ctx context.Context, w io.Writer, o benchOptions) error {
	if err := checkBenchOptions(&o); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(o.cert, o.key) // sets cert.Leaf: parsed once
	if err != nil {
		return fmt.Errorf("--cert/--key: %w", err)
	}
	var roots *x509.CertPool
	if o.cacert != "" {
		if roots, err = loadPool(o.cacert); err != nil {
			return fmt.Errorf("--cacert: %w", err)
		}
	}
	targets := []benchTarget{{name: o.addr, addr: o.addr, pid: o.serverPID}}
	if o.compare != "" {
		targets = append(targets, benchTarget{name: o.compare, addr: o.compare, pid: o.comparePID})
	}
	for i, n := range o.names {
		targets[i].name = n
	}
	verify := "server chain verified once, then its leaf pinned"
	if roots == nil {
		verify = "server certificate NOT verified (InsecureSkipVerify)"
	}
	fmt.Fprintf(w, "client: %s key, offers %s, %s; %d connections, GOMAXPROCS %d\n",
		keyName(cert.Leaf), o.curve, verify, o.concurrency, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "%-5s %-9s %-12s %9s %9s %8s %8s %6s %8s %5s %10s %9s  %s\n",
		"round", "mode", "target", "ops", "ops/s", "p50", "p99", "errors", "srv-cpu", "core", "ops/cpu-s", "cpu/op", "tls")
	// results[mode][target] holds one result per round.
	results := map[string][][]benchResult{}
	for _, mode := range o.modes {
		results[mode] = make([][]benchResult, len(targets))
	}
	for round := 1; round <= o.rounds; round++ {
		order := slices.Clone(targets)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, mode := range o.modes {
			for _, t := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r := benchTargetRun(ctx, t, mode, o, cert, roots)
				i := slices.IndexFunc(targets, func(x benchTarget) bool { return x == t })
				results[mode][i] = append(results[mode][i], r)
				printBenchRow(w, round, mode, t.name, r)
			}
		}
	}
	if len(targets) == 2 {
		printBenchRatios(w, o.modes, targets, results)
	}
	return nil
}

func keyName(leaf *x509.Certificate) string {
	if leaf == nil {
		return "unknown"
	}
	if t, err := keytype.Of(leaf.PublicKey); err == nil {
		return string(t)
	}
	return leaf.PublicKeyAlgorithm.String()
}

func printBenchRow(w io.Writer, round int, mode, name string, r benchResult) {
	cpu, share, perCPU, perOp := "-", "-", "-", "-"
	if r.serverCPU > 0 {
		cpu = r.serverCPU.Round(10 * time.Millisecond).String()
		share = fmt.Sprintf("%.0f%%", 100*r.serverCPU.Seconds()/r.elapsed.Seconds())
		perCPU = fmt.Sprintf("%.0f", r.perCPU())
		if r.ops > 0 {
			perOp = (r.serverCPU / time.Duration(r.ops)).Round(time.Microsecond).String()
		}
	}
	fmt.Fprintf(w, "%-5d %-9s %-12s %9d %9.0f %8s %8s %6d %8s %5s %10s %9s  %s\n", round, mode, name, r.ops, r.rate(),
		r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs, cpu, share, perCPU, perOp, r.params)
	if r.notResumed > 0 {
		fmt.Fprintf(w, "  %d connections did a full handshake (no session to resume)\n", r.notResumed)
	}
	if r.firstErr != nil {
		fmt.Fprintf(w, "  first error: %v\n", r.firstErr)
	}
}

// printBenchRatios prints, per mode, the ratio of the first target to the
// second: by wall-clock rate, and by operations per server CPU-second when
// both CPU times were measured. With several rounds it is the median of
// the rounds' ratios.
func printBenchRatios(w io.Writer, modes []string, targets []benchTarget, results map[string][][]benchResult) {
	fmt.Fprintf(w, "ratio %s/%s", targets[0].name, targets[1].name)
	if n := len(results[modes[0]][0]); n > 1 {
		fmt.Fprintf(w, " (median of %d rounds; each round in brackets)", n)
	}
	fmt.Fprintln(w)
	for _, mode := range modes {
		a, b := results[mode][0], results[mode][1]
		var wall, cpu []float64
		for i := range a {
			if b[i].rate() > 0 {
				wall = append(wall, a[i].rate()/b[i].rate())
			}
			if a[i].perCPU() > 0 && b[i].perCPU() > 0 {
				cpu = append(cpu, a[i].perCPU()/b[i].perCPU())
			}
		}
		fmt.Fprintf(w, "%-9s wall-clock %s", mode, ratioText(wall))
		if len(cpu) > 0 {
			fmt.Fprintf(w, "   per server CPU-second %s", ratioText(cpu))
		}
		fmt.Fprintln(w)
	}
}

func ratioText(rs []float64) string {
	if len(rs) == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.2fx", median(rs))
	if len(rs) > 1 {
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%.2f", r)
		}
		s += " [" + strings.Join(parts, " ") + "]"
	}
	return s
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

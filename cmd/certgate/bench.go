package main

import (
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
	"github.com/certgate/certgate/internal/cadir"
)

func newBenchCmd(s streams) *cobra.Command {
	o := bench.TLSOptions{Out: s.out}
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := bench.RunTLS(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "", "address to load")
	f.StringVar(&o.Compare, "compare", "", "second address to load with the same client, for comparison")
	f.StringSliceVar(&o.Names, "names", nil, "names of --addr and --compare in the output, e.g. gateway,baseline (default: the addresses)")
	f.IntVar(&o.ServerPID, "server-pid", 0, "process ID of the server at --addr: report its CPU time (Linux)")
	f.IntVar(&o.ComparePID, "compare-pid", 0, "process ID of the server at --compare: report its CPU time (Linux)")
	f.StringVar(&o.Cert, "cert", "", "client certificate chain PEM")
	f.StringVar(&o.Key, "key", "", "client key PEM")
	f.StringVar(&o.CACert, "cacert", "", "roots that verify the server once per target (default: the server is not verified)")
	f.StringVar(&o.ServerName, "server-name", "localhost", "name to verify in the server certificate (with --cacert)")
	f.StringVar(&o.Curve, "curve", "P256", "key-exchange group the client offers: P256, X25519 or X25519MLKEM768")
	f.StringSliceVar(&o.Modes, "mode", slices.Clone(bench.TLSModes), "modes to run: full, resumed, keepalive")
	f.StringVar(&o.Path, "path", "/", "request path")
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "measured duration of each run")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured load before each run (fills caches and the session cache)")
	f.IntVar(&o.Concurrency, "concurrency", 16, "concurrent connections")
	f.IntVar(&o.Rounds, "rounds", 1, "times to run every mode against every target, alternating the order")
	cmd.AddCommand(newBenchBaselineCmd(s), newBenchUpstreamCmd(s), newBenchEnrollCmd(s), newBenchRevokeCmd(s), newBenchRenewCmd(s), newBenchStormCmd(s), newBenchIdleCmd(s))
	return cmd
}

// benchTarget reads the admin credentials of the CA directory dir for a
// load against server (the config's server URL if empty).
func benchTarget(dir, server string) (bench.Target, error) {
	cert, roots, cfg, err := cadir.AdminCredentials(dir)
	if err != nil {
		return bench.Target{}, err
	}
	if server == "" {
		server = cfg.Listen.URL
	}
	return bench.Target{URL: server, Roots: roots, Admin: cert, TrustDomain: cfg.TrustDomain, Bundle: cfg.Path(cfg.Admin.Bundle)}, nil
}

// printed prints res, if the run returned one, then returns the run's
// error: a run that measured but failed still shows its figures.
func printed[R interface {
	comparable
	Print(io.Writer) error
}](out io.Writer, res R, err error) error {
	var none R
	if res != none {
		if perr := res.Print(out); perr != nil {
			return perr
		}
	}
	return err
}

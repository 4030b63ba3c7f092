package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
)

func newBenchIdleCmd(s streams) *cobra.Command {
	o := bench.IdleOptions{Out: s.out}
	cmd := &cobra.Command{
		Use:   "idle --addr HOST:PORT --server-pid PID --cert C --key K [--conns N] [--metrics URL]",
		Short: "Measure a server's memory per idle mTLS keep-alive connection",
		Long: `Measure what a server holds for each mTLS keep-alive connection waiting for
its next request: open --conns connections (a full handshake each, at most
--concurrency at a time), send one GET --path on each and read the whole
answer, hold them all for --settle, and read the server's resident memory
(VmRSS in /proc/PID/status, Linux) against what it was before; with
--metrics (a Prometheus endpoint with the Go collector: the gateway's
metrics listener, or 'certgate bench baseline --metrics') also the Go
runtime's view: heap and stacks in use, goroutines, per connection. Then
the connections are closed with a reset (no TIME_WAIT).

Measure a fresh server process: a Go server keeps the heap of earlier
connections and reuses it. Raise the open-file limit of the server and of
this command above --conns (ulimit -n). scripts/bench-idle.sh runs the
gateway, the bare Go server and nginx side by side.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := bench.RunIdle(cmd.Context(), o)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "", "address of the server")
	f.StringVar(&o.Name, "name", "", "the server's name in the report (default: the address)")
	f.IntVar(&o.ServerPID, "server-pid", 0, "process ID of the server (its memory is measured)")
	f.StringVar(&o.MetricsURL, "metrics", "", "http://HOST:PORT/metrics of the server, with the Go collector's go_* metrics")
	f.StringVar(&o.Cert, "cert", "", "client certificate chain PEM")
	f.StringVar(&o.Key, "key", "", "client key PEM")
	f.StringVar(&o.CACert, "cacert", "", "roots that verify the server once (default: the server is not verified)")
	f.StringVar(&o.ServerName, "server-name", "localhost", "name to verify in the server certificate (with --cacert)")
	f.StringVar(&o.Curve, "curve", "P256", "key-exchange group the client offers: P256, X25519 or X25519MLKEM768")
	f.StringVar(&o.Path, "path", "/", "path of the one request on each connection")
	f.IntVar(&o.Conns, "conns", 5000, "connections to open and hold")
	f.IntVar(&o.Concurrency, "concurrency", 32, "handshakes in flight while opening")
	f.DurationVar(&o.Settle, "settle", 5*time.Second, "how long the connections are held after the last answer before memory is read")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound of the whole run")
	return cmd
}

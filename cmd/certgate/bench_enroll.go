package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
	"github.com/certgate/certgate/internal/keytype"
)

// benchLoadFlags are the flags every issuance load has besides its
// options: where the CA directory is and which server to load.
type benchLoadFlags struct {
	dir, server string
}

func (f *benchLoadFlags) add(cmd *cobra.Command) {
	dirFlag(cmd, &f.dir)
	cmd.Flags().StringVar(&f.server, "server", "", "server URL (default: server.url from the config)")
}

// target checks --dir and the run's options (check), then reads the
// target from the CA directory.
func (f *benchLoadFlags) target(check func() error) (bench.Target, error) {
	if err := needDir(f.dir); err != nil {
		return bench.Target{}, err
	}
	if err := check(); err != nil {
		return bench.Target{}, err
	}
	return benchTarget(f.dir, f.server)
}

func newBenchEnrollCmd(s streams) *cobra.Command {
	var f benchLoadFlags
	o := bench.EnrollOptions{Log: s.err}
	cmd := &cobra.Command{
		Use:   "enroll --dir DIR [--server URL] [--clients 32] [--count 20000] [--duration 60s]",
		Short: "Measure enrollments per second and their latency against a running server",
		Long: `Mints --count tokens through the admin API and makes a key and CSR for each
(not measured), then sends the enrollments over --clients keep-alive TLS
connections and prints enrollments/s, p50/p90/p99 latency, a histogram and
errors by code. The run stops when every enrollment was sent or after
--duration. Connections are opened before the clock starts: this measures
enrollments (token + CSR -> durable record -> certificate), not handshakes.
With --server-pid (a server on this machine, Linux) it also reports the
server's CPU time per enrollment. It fills the store with --count
certificates: run it against a test CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if o.Target, err = f.target(o.Check); err != nil {
				return err
			}
			res, err := bench.RunEnroll(cmd.Context(), o)
			return printed(s.out, res, err)
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&o.Clients, "clients", 32, "concurrent clients, one keep-alive connection each")
	cmd.Flags().IntVar(&o.Count, "count", 20000, "enrollments to prepare and send")
	cmd.Flags().DurationVar(&o.Duration, "duration", 60*time.Second, "stop sending after this long (0: no bound)")
	cmd.Flags().StringVar(&o.KeyType, "key-type", string(keytype.Default), "client key type of the CSRs")
	cmd.Flags().BoolVar(&o.HTTP2, "http2", false, "speak HTTP/2 instead of HTTP/1.1")
	cmd.Flags().IntVar(&o.ServerPID, "server-pid", 0, "process ID of a local server: report its CPU time per enrollment (Linux)")
	return cmd
}

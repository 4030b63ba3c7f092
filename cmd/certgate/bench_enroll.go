package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/loadgen"
)

// benchEnrollOptions are the flags of "certgate bench enroll".
type benchEnrollOptions struct {
	dir, server string
	clients     int
	count       int
	duration    time.Duration
	keyType     string
	http2       bool
	serverPID   int
}

func newBenchEnrollCmd(s streams) *cobra.Command {
	var o benchEnrollOptions
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEnroll(cmd.Context(), s.out, s.err, o)
		},
	}
	dirFlag(cmd, &o.dir)
	cmd.Flags().StringVar(&o.server, "server", "", "server URL (default: server.url from the config)")
	cmd.Flags().IntVar(&o.clients, "clients", 32, "concurrent clients, one keep-alive connection each")
	cmd.Flags().IntVar(&o.count, "count", 20000, "enrollments to prepare and send")
	cmd.Flags().DurationVar(&o.duration, "duration", 60*time.Second, "stop sending after this long (0: no bound)")
	cmd.Flags().StringVar(&o.keyType, "key-type", string(keytype.Default), "client key type of the CSRs")
	cmd.Flags().BoolVar(&o.http2, "http2", false, "speak HTTP/2 instead of HTTP/1.1")
	cmd.Flags().IntVar(&o.serverPID, "server-pid", 0, "process ID of a local server: report its CPU time per enrollment (Linux)")
	return cmd
}

func runBenchEnroll(ctx context.Context, out, errw io.Writer, o benchEnrollOptions) error {
	if err := needDir(o.dir); err != nil {
		return err
	}
	if o.clients < 1 {
		return fmt.Errorf("--clients: %d: need at least one client", o.clients)
	}
	if o.count < 1 {
		return fmt.Errorf("--count: %d: need at least one enrollment", o.count)
	}
	if o.duration < 0 {
		return fmt.Errorf("--duration: %s is negative", o.duration)
	}
	t, err := openLoadTarget(o.dir, o.server, o.keyType, o.serverPID)
	if err != nil {
		return err
	}
	defer t.admin.CloseIdleConnections()

	fmt.Fprintf(errw, "preparing %d tokens and %s CSRs (not measured)...\n", o.count, t.keyType)
	t0 := time.Now()
	work, err := loadgen.Prepare(ctx, t.admin, loadgen.PrepareOptions{Count: o.count, TrustDomain: t.cfg.TrustDomain, KeyType: t.keyType})
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "prepared in %s; enrolling with %d clients against %s...\n", time.Since(t0).Round(time.Millisecond), o.clients, t.server)
	res, err := loadgen.Run(ctx, loadgen.Options{ServerURL: t.server, Roots: t.roots, Clients: o.clients, Duration: o.duration, HTTP2: o.http2, ServerCPU: t.serverCPU}, work)
	if err := printRun(out, res, err); err != nil {
		return err
	}
	if n := res.Failed(); n > 0 {
		return fmt.Errorf("bench enroll: %d of %d enrollments failed", n, res.Sent)
	}
	return nil
}

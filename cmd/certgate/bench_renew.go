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

// benchRenewOptions are the flags of "certgate bench renew" and
// "certgate bench storm".
type benchRenewOptions struct {
	dir, server string
	clients     int
	count       int
	duration    time.Duration
	window      time.Duration // storm only
	keyType     string
	resume      bool
	serverPID   int
}

func newBenchRenewCmd(s streams) *cobra.Command {
	var o benchRenewOptions
	cmd := &cobra.Command{
		Use:   "renew --dir DIR [--server URL] [--clients 32] [--count 20000] [--duration 60s] [--resume]",
		Short: "Measure renewals per second, each on a new mTLS connection, against a running server",
		Long: `Enrolls --count agents through the API and makes a new key and CSR for each
(not measured), then renews every agent once, --clients at a time, each
renewal on a NEW TLS connection presenting the agent's current certificate
(POST /v1/renew), and prints renewals/s, p50/p90/p99 latency (dial to
answer), a histogram and errors by code. Every answer is checked (identity,
certificate for the new key).

Without --resume every renewal is a full TLS handshake. With --resume each
agent first opens one connection with its certificate (not measured) and
keeps the session ticket, and its renewal resumes that session: the
handshake exchanges no certificates and makes no signatures. The two modes
are different figures; report them separately.

The run stops when every agent renewed or after --duration. With
--server-pid (a server on this machine, Linux) it also reports the
server's CPU time per renewal. It fills the store with 2 x --count
certificates: run it against a test CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchRenew(cmd.Context(), s.out, s.err, o, false)
		},
	}
	renewFlags(cmd, &o)
	cmd.Flags().IntVar(&o.clients, "clients", 32, "renewals in flight at once")
	cmd.Flags().IntVar(&o.count, "count", 20000, "agents to enroll, each renewing once")
	cmd.Flags().DurationVar(&o.duration, "duration", 60*time.Second, "stop starting renewals after this long (0: no bound)")
	return cmd
}

func newBenchStormCmd(s streams) *cobra.Command {
	var o benchRenewOptions
	cmd := &cobra.Command{
		Use:   "storm --dir DIR [--server URL] [--agents 10000] [--window 60s] [--resume]",
		Short: "Renewal storm: every agent renews once at a random moment of a window",
		Long: `Enrolls --agents agents through the API and makes a new key and CSR for each
(not measured), then starts the clock: each agent renews once, on a new TLS
connection, at a moment drawn uniformly at random in --window, whatever
else is in flight. It prints the achieved rate, the peak number of
renewals in flight, p50/p90/p99 latency (dial to answer) and errors by
code, and fails if any renewal failed or the last answer came after the
window plus 5 s. --resume resumes a session per agent as in 'bench renew'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchRenew(cmd.Context(), s.out, s.err, o, true)
		},
	}
	renewFlags(cmd, &o)
	cmd.Flags().IntVar(&o.count, "agents", 10000, "agents, each renewing once")
	cmd.Flags().DurationVar(&o.window, "window", 60*time.Second, "the renewals are spread at random over this span")
	return cmd
}

func renewFlags(cmd *cobra.Command, o *benchRenewOptions) {
	dirFlag(cmd, &o.dir)
	cmd.Flags().StringVar(&o.server, "server", "", "server URL (default: server.url from the config)")
	cmd.Flags().StringVar(&o.keyType, "key-type", string(keytype.Default), "agent key type")
	cmd.Flags().BoolVar(&o.resume, "resume", false, "resume a TLS session per agent instead of a full handshake")
	cmd.Flags().IntVar(&o.serverPID, "server-pid", 0, "process ID of a local server: report its CPU time per renewal (Linux)")
}

// stormGrace is how long after the window the last answer may come for a
// storm to count as renewed inside it: the renewals drawn at its very end
// need their own latency.
const stormGrace = 5 * time.Second

func runBenchRenew(ctx context.Context, out, errw io.Writer, o benchRenewOptions, storm bool) error {
	if err := needDir(o.dir); err != nil {
		return err
	}
	switch {
	case storm && o.count < 1:
		return fmt.Errorf("--agents: %d: need at least one agent", o.count)
	case storm && o.window <= 0:
		return fmt.Errorf("--window: %s is not positive", o.window)
	case !storm && o.clients < 1:
		return fmt.Errorf("--clients: %d: need at least one client", o.clients)
	case !storm && o.count < 1:
		return fmt.Errorf("--count: %d: need at least one agent", o.count)
	case !storm && o.duration < 0:
		return fmt.Errorf("--duration: %s is negative", o.duration)
	}
	t, err := openLoadTarget(o.dir, o.server, o.keyType, o.serverPID)
	if err != nil {
		return err
	}
	defer t.admin.CloseIdleConnections()

	fmt.Fprintf(errw, "enrolling %d agents with %s keys and making their renewal CSRs (not measured)...\n", o.count, t.keyType)
	t0 := time.Now()
	agents, err := loadgen.PrepareAgents(ctx, t.admin, loadgen.AgentOptions{
		PrepareOptions: loadgen.PrepareOptions{Count: o.count, TrustDomain: t.cfg.TrustDomain, KeyType: t.keyType},
		ServerURL:      t.server, Roots: t.roots,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "prepared in %s\n", time.Since(t0).Round(time.Millisecond))
	mode := "full handshakes"
	if o.resume {
		t0 = time.Now()
		if err := loadgen.WarmSessions(ctx, t.server, t.roots, agents, 32); err != nil {
			return err
		}
		fmt.Fprintf(errw, "opened a session per agent in %s (not measured)\n", time.Since(t0).Round(time.Millisecond))
		mode = "resumed sessions"
	}
	var res *loadgen.RenewResult
	if storm {
		fmt.Fprintf(errw, "storm: %d agents renewing at random over %s against %s, %s...\n", o.count, o.window, t.server, mode)
		res, err = loadgen.RunStorm(ctx, loadgen.StormOptions{ServerURL: t.server, Roots: t.roots, Window: o.window, Resume: o.resume, ServerCPU: t.serverCPU}, agents)
	} else {
		fmt.Fprintf(errw, "renewing with %d in flight against %s, %s...\n", o.clients, t.server, mode)
		res, err = loadgen.RunRenew(ctx, loadgen.RenewOptions{ServerURL: t.server, Roots: t.roots, Clients: o.clients, Duration: o.duration, Resume: o.resume, ServerCPU: t.serverCPU}, agents)
	}
	if err := printRun(out, res, err); err != nil {
		return err
	}
	name := "bench renew"
	if storm {
		name = "bench storm"
	}
	if n := res.Failed(); n > 0 {
		return fmt.Errorf("%s: %d of %d renewals failed", name, n, res.Sent)
	}
	if o.resume && res.Resumed != res.OK {
		return fmt.Errorf("%s: only %d of %d renewals resumed their session", name, res.Resumed, res.OK)
	}
	if storm && res.Elapsed > o.window+stormGrace {
		return fmt.Errorf("bench storm: the last renewal was answered after %s, past the %s window", res.Elapsed.Round(time.Millisecond), o.window)
	}
	return nil
}

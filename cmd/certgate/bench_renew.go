package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
	"github.com/certgate/certgate/internal/keytype"
)

func newBenchRenewCmd(s streams) *cobra.Command {
	var f benchLoadFlags
	o := bench.RenewOptions{Log: s.err}
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchRenew(cmd, s, &f, o) },
	}
	renewFlags(cmd, &f, &o)
	cmd.Flags().IntVar(&o.Clients, "clients", 32, "renewals in flight at once")
	cmd.Flags().IntVar(&o.Count, "count", 20000, "agents to enroll, each renewing once")
	cmd.Flags().DurationVar(&o.Duration, "duration", 60*time.Second, "stop starting renewals after this long (0: no bound)")
	return cmd
}

func newBenchStormCmd(s streams) *cobra.Command {
	var f benchLoadFlags
	o := bench.RenewOptions{Log: s.err}
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
			o.Storm = true
			return runBenchRenew(cmd, s, &f, o)
		},
	}
	renewFlags(cmd, &f, &o)
	cmd.Flags().IntVar(&o.Count, "agents", 10000, "agents, each renewing once")
	cmd.Flags().DurationVar(&o.Window, "window", 60*time.Second, "the renewals are spread at random over this span")
	return cmd
}

func renewFlags(cmd *cobra.Command, f *benchLoadFlags, o *bench.RenewOptions) {
	f.add(cmd)
	cmd.Flags().StringVar(&o.KeyType, "key-type", string(keytype.Default), "agent key type")
	cmd.Flags().BoolVar(&o.Resume, "resume", false, "resume a TLS session per agent instead of a full handshake")
	cmd.Flags().IntVar(&o.ServerPID, "server-pid", 0, "process ID of a local server: report its CPU time per renewal (Linux)")
}

func runBenchRenew(cmd *cobra.Command, s streams, f *benchLoadFlags, o bench.RenewOptions) (err error) {
	if o.Target, err = f.target(o.Check); err != nil {
		return err
	}
	res, err := bench.RunRenew(cmd.Context(), o)
	return printed(s.out, res, err)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/workloadapi"
)

// agentFlags are the flags of `certgate agent`.
type agentFlags struct {
	dir, server, onRenew, listen, upstream, serverName, logFormat string
	hookTimeout                                                   time.Duration
	allowRemote                                                   bool
	workloadAPI                                                   string
	workloadUIDs, workloadGIDs                                    []uint
}

func newAgentCmd(s streams) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --dir DIR [--server URL] [--on-renew CMD] [--listen 127.0.0.1:PORT --upstream https://GATEWAY] [--workload-api unix:///PATH]",
		Short: "Keep an enrolled client's certificate renewed; optionally proxy plain HTTP to the gateway over mTLS",
		Long: `Renews the certificate in DIR (written by certgate enroll) at about two thirds
of its lifetime, with a new key each time, replacing key.pem, cert.pem,
bundle.pem and combined.pem atomically, then runs --on-renew. On failure it
retries with backoff and keeps the current certificate until it expires.

With --listen and --upstream it also serves a local plain-HTTP proxy that
reaches the gateway over mTLS with the current certificate.

With --workload-api unix:///PATH it serves the SPIFFE Workload API there
(FetchX509SVID and FetchX509Bundles, a new message after each renewal) to
callers whose uid (--workload-api-uid) or gid (--workload-api-gid) the
kernel reports as allowed; by default only the agent's own uid.

The server URL is given once with --server and remembered in DIR/server.url.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), s, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "directory written by certgate enroll (key.pem, cert.pem, bundle.pem)")
	fl.StringVar(&f.server, "server", "", "certgate server URL, https://HOST:PORT (default: DIR/server.url, written the first time --server is given)")
	fl.StringVar(&f.onRenew, "on-renew", "", "shell command run (sh -c) after each renewal, once every file is written")
	fl.DurationVar(&f.hookTimeout, "on-renew-timeout", agent.DefaultHookTimeout, "how long --on-renew may run before it is killed")
	fl.StringVar(&f.listen, "listen", "", "serve a plain-HTTP proxy to --upstream on this loopback address, e.g. 127.0.0.1:8080")
	fl.StringVar(&f.upstream, "upstream", "", "gateway the proxy forwards to over mTLS, https://HOST:PORT")
	fl.StringVar(&f.serverName, "server-name", "", "name the gateway's certificate must have, and the Host sent, when --upstream dials an address it does not name (like curl --resolve)")
	fl.BoolVar(&f.allowRemote, "allow-remote", false, "let --listen be a non-loopback address (anyone who can connect acts as this client)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fl.StringVar(&f.workloadAPI, "workload-api", "", "serve the SPIFFE Workload API (X.509 SVIDs and bundles, streamed on renewal) on this socket, unix:///run/certgate/agent.sock")
	fl.UintSliceVar(&f.workloadUIDs, "workload-api-uid", nil, "uids the Workload API serves (repeatable or comma-separated; with no --workload-api-uid/--workload-api-gid: the agent's own uid)")
	fl.UintSliceVar(&f.workloadGIDs, "workload-api-gid", nil, "gids the Workload API serves (the caller's primary gid as the kernel reports it)")
	cmd.AddCommand(newAgentStatusCmd(s))
	return cmd
}

// runAgent runs the agent, and its proxy if asked, until ctx ends or
// renewal becomes impossible.
func runAgent(ctx context.Context, s streams, f agentFlags) error {
	if f.dir == "" {
		return errors.New("--dir: required (the directory certgate enroll wrote)")
	}
	if (f.listen == "") != (f.upstream == "") {
		return errors.New("--listen and --upstream go together: the proxy needs both")
	}
	if f.serverName != "" && f.upstream == "" {
		return errors.New("--server-name: names the gateway of --upstream, which is not given")
	}
	if f.listen != "" {
		if err := agent.CheckListen(f.listen, f.allowRemote); err != nil {
			return err
		}
	}
	var log *slog.Logger
	switch f.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(s.err, logOptions(nil)))
	case "json":
		log = slog.New(slog.NewJSONHandler(s.err, logOptions(nil)))
	default:
		return fmt.Errorf("--log-format: %q is not text or json", f.logFormat)
	}
	serverURL, err := agent.ServerURL(f.dir, f.server)
	if err != nil {
		return err
	}
	hup, stopHup := hangups()
	defer stopHup()
	source := "--server"
	if f.server == "" {
		source = filepath.Join(f.dir, "server.url")
	}
	a, err := agent.New(agent.Options{Dir: f.dir, ServerURL: serverURL, ServerURLSource: source, Log: log, OnRenew: f.onRenew, HookTimeout: f.hookTimeout, Reload: hup,
		AuditWitness: filepath.Join(f.dir, auditcheck.WitnessFile)})
	if err != nil {
		return err
	}
	if err := agent.RememberServerURL(f.dir, serverURL); err != nil {
		return err
	}
	// The status is known before anything is served: a revoked
	// certificate stops the agent here, and `agent status` run right
	// after start already has the responder's answer.
	if err := a.CheckStatus(ctx); err != nil {
		return err
	}
	var wl *workloadapi.Server
	var wlListener net.Listener
	if f.workloadAPI != "" {
		path, err := workloadapi.ParseAddr(f.workloadAPI)
		if err != nil {
			return fmt.Errorf("--workload-api: %w", err)
		}
		o := workloadapi.Options{Log: log}
		for _, u := range f.workloadUIDs {
			o.UIDs = append(o.UIDs, uint32(u))
		}
		for _, g := range f.workloadGIDs {
			o.GIDs = append(o.GIDs, uint32(g))
		}
		if wl, err = workloadapi.New(a.Credentials(), o); err != nil {
			return fmt.Errorf("--workload-api: %w", err)
		}
		a.OnRotate(wl.Update)
		if wlListener, err = workloadapi.Listen(path); err != nil {
			return fmt.Errorf("--workload-api: %w", err)
		}
	} else if len(f.workloadUIDs)+len(f.workloadGIDs) > 0 {
		return errors.New("--workload-api-uid and --workload-api-gid need --workload-api")
	}
	st := a.Status()
	fmt.Fprintf(s.out, "certgate agent for %s: certificate %s valid until %s; renewing through %s\n",
		st.Identity, st.Serial, st.NotAfter.UTC().Format(time.RFC3339), serverURL)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	proxyDone := make(chan error, 1)
	if f.listen != "" {
		p, err := agent.NewProxy(a, f.upstream, log)
		if err != nil {
			return err
		}
		if f.serverName != "" {
			p.SetServerName(f.serverName)
		}
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		fmt.Fprintf(s.out, "proxy listening on http://%s -> %s (mTLS as %s)\n", ln.Addr(), f.upstream, st.Identity)
		go func() { proxyDone <- p.Serve(ctx, ln) }()
	} else {
		proxyDone <- nil
	}
	wlDone := make(chan error, 1)
	if wl != nil {
		fmt.Fprintf(s.out, "workload API on %s\n", f.workloadAPI)
		go func() { wlDone <- wl.Serve(ctx, wlListener) }()
	} else {
		wlDone <- nil
	}
	runErr := a.Run(ctx)
	cancel()
	for _, done := range []chan error{proxyDone, wlDone} {
		if err := <-done; err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr == nil {
		st := a.Status()
		log.Info("agent stopped", "identity", st.Identity, "serial", st.Serial, "state", string(st.State), "renewals", st.Renewals)
	}
	return runErr
}

func newAgentStatusCmd(s streams) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --dir DIR",
		Short: "Show the identity, expiry, next renewal and last error of an agent's certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgentStatus(s, dir, asJSON, time.Now())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the agent's directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the agent's agent-status.json, or the same fields from cert.pem)")
	return cmd
}

func runAgentStatus(s streams, dir string, asJSON bool, now time.Time) error {
	if dir == "" {
		return errors.New("--dir: required (the agent's directory)")
	}
	st, err := agent.ReadStatus(dir)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.out, "%s\n", b)
		return err
	}
	return st.WriteText(s.out, now)
}

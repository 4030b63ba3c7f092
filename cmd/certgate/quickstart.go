package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/gatewayd"
)

// demoPassphrase encrypts the quickstart CA's keys when the operator gives
// none. It is printed as a warning: a quickstart CA is a demo, never a
// production CA, and storing a real passphrase next to the keys would be
// worse than a well-known one that says so.
const demoPassphrase = "certgate-quickstart-demo-only"

// Quickstart defaults: the gateway takes the well-known HTTPS-alternate
// port, the server the one after it, both on loopback only.
const (
	quickstartGatewayListen = "127.0.0.1:8443"
	quickstartServerListen  = "127.0.0.1:8444"
)

type quickstartOptions struct {
	dir, listen, serverListen, trustDomain, passFile string
	json                                             bool
	// serverListenSet and trustDomainSet say whether the flags were given:
	// a reused directory otherwise keeps what its config says.
	serverListenSet, trustDomainSet bool
}

func newQuickstartCmd(s streams) *cobra.Command {
	var o quickstartOptions
	cmd := &cobra.Command{
		Use:   "quickstart [--dir DIR] [--listen 127.0.0.1:8443] [--json]",
		Short: "Run a demo CA, server, gateway and echo API in one process and print commands that work",
		Long: `Run everything in one process on the embedded SQLite store: a CA (created in
DIR if DIR has none, reused otherwise), the certgate server on --server-listen,
a gateway on --listen that follows the server's change feed, and a demo echo
API behind it whose only route allows spiffe://TD/demo/allowed. Two demo
clients (demo/allowed and demo/denied) are enrolled afresh through the API on
every run. Once ready it prints curl commands that get 200, 403 and 401 (no
certificate), and the command that revokes the allowed client. With --json it
prints one JSON object on stdout instead (and the text on stderr).
Ctrl-C or SIGTERM stops it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.serverListenSet = cmd.Flags().Changed("server-listen")
			o.trustDomainSet = cmd.Flags().Changed("trust-domain")
			return runQuickstart(cmd.Context(), s, o)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "certgate-quickstart", "directory for the demo CA (reused when it exists)")
	cmd.Flags().StringVar(&o.listen, "listen", quickstartGatewayListen, "address of the mTLS gateway (port 0 picks a free port)")
	cmd.Flags().StringVar(&o.serverListen, "server-listen", quickstartServerListen, "address of the certgate server (port 0 picks a free port; default for a reused DIR: its config)")
	cmd.Flags().StringVar(&o.trustDomain, "trust-domain", "example.org", "trust domain of a new demo CA")
	cmd.Flags().StringVar(&o.passFile, "passphrase-file", "", "CA passphrase file (default $CERTGATE_PASSPHRASE, else a well-known demo passphrase)")
	cmd.Flags().BoolVar(&o.json, "json", false, "once ready, print one JSON object on stdout (human text goes to stderr)")
	return cmd
}

// quickstartInfo is what --json prints once everything is ready.
type quickstartInfo struct {
	GatewayURL  string                          `json:"gateway_url"`
	ServerURL   string                          `json:"server_url"`
	UpstreamURL string                          `json:"upstream_url"`
	TrustDomain string                          `json:"trust_domain"`
	Dir         string                          `json:"dir"`
	Bundle      string                          `json:"bundle"`
	AdminDir    string                          `json:"admin_dir"`
	AccessLog   string                          `json:"access_log"`
	Log         string                          `json:"log"`
	Clients     map[string]quickstartClientInfo `json:"clients"`
	Commands    quickstartCommands              `json:"commands"`
	ReadyMillis int64                           `json:"ready_ms"`
}

type quickstartClientInfo struct {
	Identity string `json:"identity"`
	Dir      string `json:"dir"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
}

// quickstartCommands are the shell commands the text output prints.
type quickstartCommands struct {
	Allowed       string `json:"allowed"`
	Denied        string `json:"denied"`
	NoCertificate string `json:"no_certificate"`
	Revoke        string `json:"revoke"`
}

// runQuickstart runs quickstart until ctx is done. Stopped by ctx (Ctrl-C,
// SIGTERM), at any point, it returns nil once everything is shut down:
// whatever failed while it was starting failed because of the stop.
func runQuickstart(ctx context.Context, s streams, o quickstartOptions) error {
	err := quickstart(ctx, s, o)
	var se shutdownError
	if err != nil && (ctx.Err() == nil || errors.As(err, &se)) {
		return err
	}
	fmt.Fprintln(s.err, "quickstart stopped")
	return nil
}

// shutdownError is a component's failure to stop cleanly, reported even
// though the stop was asked for.
type shutdownError struct{ err error }

func (e shutdownError) Error() string { return "quickstart: shutdown: " + e.err.Error() }
func (e shutdownError) Unwrap() error { return e.err }

func quickstart(ctx context.Context, s streams, o quickstartOptions) error {
	start := time.Now()
	human := s.out
	if o.json {
		human = s.err
	}
	pass, err := quickstartPassphrase(o.passFile, s.err)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}

	// Bind the server's port before creating anything, so a busy port fails
	// first, and so that port 0 becomes a real port the config can name.
	exists := cadir.Exists(dir)
	serverListen, from := o.serverListen, "--server-listen"
	if exists && !o.serverListenSet {
		cfg, err := config.LoadServer(dir)
		if err != nil {
			return err
		}
		serverListen, from = cfg.Listen.Listen, "server.listen of "+filepath.Join(dir, config.FileName)
	}
	srvLn, err := net.Listen("tcp", serverListen)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is another quickstart running? --server-listen 127.0.0.1:0 picks a free port)", from, serverListen, err)
	}
	defer srvLn.Close()
	serverAddr := srvLn.Addr().String()
	if err := prepareQuickstartCA(ctx, human, dir, serverAddr, pass, o, exists); err != nil {
		return err
	}
	inst, err := cadir.Open(ctx, dir, pass, clock.Real{})
	if err != nil {
		return err
	}
	defer inst.Close()
	logPath := filepath.Join(dir, "quickstart.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, logOptions(nil)))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every component reports its end here; the first error stops them all.
	var wg sync.WaitGroup
	failed := make(chan error, 4)
	component := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				failed <- err // the server's and the gateway's errors name them
				return
			}
			if ctx.Err() == nil {
				failed <- fmt.Errorf("quickstart: the %s stopped unexpectedly", name)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	stopLife, err := startCALife(ctx, inst, log)
	if err != nil {
		return err
	}
	defer stopLife()
	cp, stopCP, err := startCheckpoints(inst, log)
	if err != nil {
		return err
	}
	defer stopCP()
	srv, err := newServer(inst, log, cp)
	if err != nil {
		return err
	}
	// SIGHUP reloads the demo server's certgate.yaml as it does a
	// server's (and the gateway's routes, below).
	hup, stopHup := hangups()
	defer stopHup()
	component("server reload", func() error {
		serverReload{signals: hup}.run(ctx, log, inst, srv)
		return nil
	})
	// A reused directory whose config has a status listener names it in
	// every certificate: serve it, as "certgate server" does.
	var statusLn net.Listener
	if sl := inst.Config.Listen.StatusListen; sl != "" {
		if statusLn, err = net.Listen("tcp", sl); err != nil {
			return fmt.Errorf("server.status_listen of %s: %w", filepath.Join(dir, config.FileName), err)
		}
	}
	component("server", func() error {
		if statusLn != nil {
			return serveWithStatus(ctx, log, srv, inst.Config.Listen, srvLn, statusLn)
		}
		return srv.Serve(ctx, srvLn)
	})

	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("quickstart: demo upstream: %w", err)
	}
	up := &http.Server{Handler: echoHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	component("demo upstream", func() error {
		errc := make(chan error, 1)
		go func() { errc <- up.Serve(upLn) }()
		select {
		case err := <-errc:
			return fmt.Errorf("quickstart: demo upstream: %w", err)
		case <-ctx.Done():
		}
		shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if err := up.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("quickstart: demo upstream: %w", err)
		}
		return nil
	})
	upstreamURL := "http://" + upLn.Addr().String()

	td := inst.Config.TrustDomain
	demo, err := enrollDemo(ctx, dir, td)
	if err != nil {
		return err
	}
	cfgPath, err := writeQuickstartGatewayConfig(dir, o.listen, td, inst.Config.Listen.URL, upstreamURL)
	if err != nil {
		return err
	}
	ready := make(chan net.Addr, 1)
	component("gateway", func() error {
		// The demo's access log is a file; SIGHUP reloads its routes as it
		// does a gateway's.
		sighup, stop := hangups()
		defer stop()
		return gatewayd.Run(ctx, gatewayd.Options{Config: cfgPath, Log: log, Token: demo.gatewayToken, Reload: sighup,
			Ready: func(gw *gateway.Gateway) { ready <- gw.Addr() }})
	})
	var gwAddr net.Addr
	select {
	case gwAddr = <-ready:
	case err := <-failed:
		return err
	case <-ctx.Done():
		return nil
	}

	info := quickstartInfo{
		GatewayURL: "https://" + dialableAddr(gwAddr), ServerURL: inst.Config.Listen.URL, UpstreamURL: upstreamURL,
		TrustDomain: td, Dir: dir, Bundle: inst.Config.Path(inst.Config.CA.Bundle), AdminDir: filepath.Dir(inst.Config.Path(inst.Config.Admin.Cert)),
		AccessLog: filepath.Join(dir, "gateway", "access.log"), Log: logPath, Clients: demo.clients,
	}
	info.Commands = demoCommands(info, certgateCommand(osCommandEnv()))
	info.ReadyMillis = time.Since(start).Milliseconds()
	printQuickstart(human, info, time.Since(start))
	if o.json {
		b, err := json.Marshal(info)
		if err != nil {
			return fmt.Errorf("quickstart: %w", err)
		}
		if _, err := fmt.Fprintf(s.out, "%s\n", b); err != nil {
			return fmt.Errorf("quickstart: %w", err)
		}
	}
	log.Info("quickstart ready", "gateway", info.GatewayURL, "server", info.ServerURL, "ready_ms", info.ReadyMillis)

	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	close(failed)
	var errs []error
	for err := range failed {
		if !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return shutdownError{errors.Join(errs...)}
	}
	return nil
}

// quickstartPassphrase reads the CA passphrase like every other command
// does, and falls back to the well-known demo passphrase, with a warning,
// only when none was given at all.
func quickstartPassphrase(file string, warn io.Writer) ([]byte, error) {
	if file != "" || os.Getenv("CERTGATE_PASSPHRASE") != "" {
		return readPassphrase(file)
	}
	fmt.Fprintf(warn, "warning: no CERTGATE_PASSPHRASE: the demo CA keys use the well-known passphrase %q (demo only)\n", demoPassphrase)
	return []byte(demoPassphrase), nil
}

// prepareQuickstartCA creates the demo CA in dir, or, for an existing one,
// points its config at the address the server is bound to (tokens and the
// admin CLI take the server URL from there).
func prepareQuickstartCA(ctx context.Context, human io.Writer, dir, serverAddr string, pass []byte, o quickstartOptions, exists bool) error {
	url := "https://" + serverAddr
	if !exists {
		cfg := config.DefaultServer(o.trustDomain)
		cfg.Listen.Listen, cfg.Listen.URL = serverAddr, url
		if err := cadir.Init(ctx, cadir.InitOptions{Dir: dir, TrustDomain: o.trustDomain, Passphrase: pass, Config: &cfg, Clock: clock.Real{}}); err != nil {
			return err
		}
		fmt.Fprintf(human, "created a demo CA for spiffe://%s in %s\n", o.trustDomain, dir)
		return nil
	}
	cfg, err := config.LoadServer(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(human, "reusing the demo CA for spiffe://%s in %s\n", cfg.TrustDomain, dir)
	if o.trustDomainSet && o.trustDomain != cfg.TrustDomain {
		fmt.Fprintf(human, "warning: --trust-domain %s ignored: %s already holds a CA for %s\n", o.trustDomain, dir, cfg.TrustDomain)
	}
	if cfg.Listen.Listen == serverAddr && cfg.Listen.URL == url {
		return nil
	}
	cfg.Listen.Listen, cfg.Listen.URL = serverAddr, url
	rendered, err := cfg.Render()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, config.FileName), rendered, 0o600); err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	fmt.Fprintf(human, "the server now listens on %s (written to %s)\n", url, filepath.Join(dir, config.FileName))
	return nil
}

// dialableAddr is addr with an unspecified host (":8443", "0.0.0.0")
// replaced by loopback, so that printed URLs work when pasted.
func dialableAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func printQuickstart(w io.Writer, info quickstartInfo, took time.Duration) {
	allowed, denied := info.Clients["allowed"], info.Clients["denied"]
	fmt.Fprintf(w, `
certgate quickstart is ready (%s).
  gateway     %s  (every path goes to the demo echo API at %s)
  server      %s
  bundle      %s
  admin       %s
  access log  %s

Paste these into another terminal:

# 1. %s is allowed: 200, and the API echoes the identity the gateway forwarded
%s

# 2. %s has a valid certificate, but the route does not allow it: 403
%s

# 3. without a client certificate: 401, and the JSON says what to do
%s

# 4. revoke the allowed client (the gateway learns it from the server's change feed within a second)
%s

# 5. the command of step 1 now gets 403: the certificate is revoked (code "revoked")
%s

Ctrl-C stops everything. Running quickstart again reuses %s and enrolls the demo clients afresh.
`, took.Round(time.Millisecond), info.GatewayURL, info.UpstreamURL, info.ServerURL, info.Bundle, info.AdminDir, info.AccessLog,
		allowed.Identity, info.Commands.Allowed, denied.Identity, info.Commands.Denied, info.Commands.NoCertificate,
		info.Commands.Revoke, info.Commands.Allowed, info.Dir)
}

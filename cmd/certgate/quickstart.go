package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
)

// demoPassphrase encrypts the quickstart CA's keys when the operator gives
// none. It is printed as a warning: a quickstart CA is a demo, never a
// production CA, and storing a real passphrase next to the keys would be
// worse than a well-known one that says so.
const demoPassphrase = "certgate-quickstart-demo-only"

type quickstartOptions struct {
	dir, serverListen, trustDomain, passFile string
}

func newQuickstartCmd(s streams) *cobra.Command {
	var o quickstartOptions
	cmd := &cobra.Command{
		Use:   "quickstart [--dir DIR]",
		Short: "Run a demo CA and server on an embedded store, enroll demo clients, print commands that work",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runQuickstart(cmd.Context(), s, o)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "certgate-quickstart", "directory for the demo CA (reused when it exists)")
	cmd.Flags().StringVar(&o.serverListen, "server-listen", "127.0.0.1:8444", "address of the certgate server")
	cmd.Flags().StringVar(&o.trustDomain, "trust-domain", "example.org", "trust domain of a new demo CA")
	cmd.Flags().StringVar(&o.passFile, "passphrase-file", "", "CA passphrase file (default $CERTGATE_PASSPHRASE, else a demo passphrase)")
	return cmd
}

func runQuickstart(ctx context.Context, s streams, o quickstartOptions) error {
	start := time.Now()
	pass, err := readPassphrase(o.passFile)
	if err != nil {
		pass = []byte(demoPassphrase)
		fmt.Fprintf(s.err, "warning: no CERTGATE_PASSPHRASE: the demo CA keys use the well-known passphrase %q (demo only)\n", demoPassphrase)
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	if !cadir.Exists(dir) {
		cfg := config.DefaultServer(o.trustDomain)
		cfg.Listen.Listen = o.serverListen
		cfg.Listen.URL = "https://" + o.serverListen
		if err := cadir.Init(ctx, cadir.InitOptions{Dir: dir, TrustDomain: o.trustDomain, Passphrase: pass, Config: &cfg, Clock: clock.Real{}}); err != nil {
			return err
		}
		fmt.Fprintf(s.err, "created a demo CA for spiffe://%s in %s\n", o.trustDomain, dir)
	} else {
		fmt.Fprintf(s.err, "reusing the demo CA in %s\n", dir)
	}
	inst, err := cadir.Open(ctx, dir, pass, clock.Real{})
	if err != nil {
		return err
	}
	defer inst.Close()
	logFile, err := os.OpenFile(filepath.Join(dir, "quickstart.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, nil))
	srv, err := newServer(inst, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", inst.Config.Listen.Listen)
	if err != nil {
		return fmt.Errorf("server listen %s: %w (is another quickstart running?)", inst.Config.Listen.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// Enroll the demo clients through the real API, as a client would.
	td := inst.Config.TrustDomain
	clients := map[string]string{}
	for _, name := range []string{"allowed", "denied"} {
		id, _ := identity.New(td, "/demo/"+name)
		tok, err := inst.Authority.CreateToken(ctx, "system:quickstart", id, 5*time.Minute)
		if err != nil {
			return err
		}
		out := filepath.Join(dir, "clients", name)
		if _, err := enroll.Enroll(ctx, enroll.Options{Token: tok.String(), OutDir: out}); err != nil {
			return err
		}
		clients[name] = out
	}
	url := inst.Config.Listen.URL
	admin := filepath.Join(dir, "admin")
	allowed := clients["allowed"]
	fmt.Fprintf(s.out, `certgate quickstart is ready (%s). Paste these into another terminal:

# the admin lists certificates (200):
curl --cacert %[2]s/bundle.pem --cert %[3]s/cert.pem --key %[3]s/key.pem %[4]s/v1/certificates

# a client that is not an admin is refused (403):
curl --cacert %[2]s/bundle.pem --cert %[5]s/cert.pem --key %[5]s/key.pem %[4]s/v1/certificates

# no certificate at all (401):
curl --cacert %[2]s/bundle.pem %[4]s/v1/certificates

# revoke the demo client, then check the audit chain:
certgate cert revoke --dir %[2]s --identity spiffe://%[6]s/demo/allowed --reason keyCompromise
certgate audit verify --dir %[2]s

Ctrl-C stops it.
`, time.Since(start).Round(time.Millisecond), dir, admin, url, allowed, td)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		cancel()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		fmt.Fprintln(s.err, "quickstart stopped")
		return nil
	}
}

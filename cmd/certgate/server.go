package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/auditsign"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/metrics"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
)

func newServerCmd(s streams) *cobra.Command {
	var dir, listen, passFile string
	cmd := &cobra.Command{
		Use:   "server --dir DIR",
		Short: "Run the control plane: enrollment, tokens, revocation, audit log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(dir); err != nil {
				return err
			}
			pass, err := readPassphrase(passFile)
			if err != nil {
				return err
			}
			server.SetGCDefault()
			level := new(slog.LevelVar)
			log := slog.New(slog.NewJSONHandler(s.err, logOptions(level)))
			hup, stop := hangups()
			defer stop()
			return runServerWith(cmd.Context(), log, serverReload{level: level, signals: hup}, dir, listen, pass, func(addr string) {
				fmt.Fprintf(s.out, "certgate server listening on https://%s\n", addr)
			})
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default: server.listen from the config)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the CA passphrase (default $CERTGATE_PASSPHRASE)")
	return cmd
}

// runServer opens DIR and serves the API until ctx is done. ready is called
// with the bound address once the listener is up.
func runServer(ctx context.Context, log *slog.Logger, dir, listen string, pass []byte, ready func(addr string)) error {
	return runServerWith(ctx, log, serverReload{}, dir, listen, pass, ready)
}

// runServerWith is runServer reloading on each value from rl.signals and
// setting rl.level (when not nil) from log.level.
func runServerWith(ctx context.Context, log *slog.Logger, rl serverReload, dir, listen string, pass []byte, ready func(addr string)) error {
	inst, err := cadir.Open(ctx, dir, pass, clock.Real{})
	if err != nil {
		return err
	}
	defer inst.Close()
	if rl.level != nil {
		rl.level.Set(logLevel(inst.Config.Log.Level))
	}
	stopLife, err := startCALife(ctx, inst, log)
	if err != nil {
		return err
	}
	defer stopLife()
	cp, stopCP, err := startCheckpoints(inst, log)
	if err != nil {
		return err
	}
	// Deferred after the store's Close, so it runs before it: the last
	// checkpoint is signed once the API stopped serving (shutdown).
	defer stopCP()
	srv, err := newServer(inst, log, cp)
	if err != nil {
		return err
	}
	if rl.signals != nil {
		done := make(chan struct{})
		reloadCtx, stopReload := context.WithCancel(ctx)
		go func() {
			defer close(done)
			rl.run(reloadCtx, log, inst, srv)
		}()
		defer func() { stopReload(); <-done }()
	}
	if listen == "" {
		listen = inst.Config.Listen.Listen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if inst.Config.Listen.StatusListen == "" {
		ready(ln.Addr().String())
		log.Info("server started", "addr", ln.Addr().String(), "trust_domain", inst.Config.TrustDomain)
		return srv.Serve(ctx, ln)
	}
	sln, err := net.Listen("tcp", inst.Config.Listen.StatusListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("server.status_listen: %w", err)
	}
	ready(ln.Addr().String())
	log.Info("server started", "addr", ln.Addr().String(), "status_addr", sln.Addr().String(), "trust_domain", inst.Config.TrustDomain)
	return serveWithStatus(ctx, log, srv, inst.Config.Listen, ln, sln)
}

// serveWithStatus serves the API on ln and certificate status alone (CRL,
// OCSP) over plain HTTP on sln, until ctx is done or either fails; both
// stop together.
func serveWithStatus(ctx context.Context, log *slog.Logger, srv *server.Server, cfg config.Listen, ln, sln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs := &http.Server{
		Handler:           srv.StatusHandler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// A GET OCSP request is at most ~5.5 KB of base64 in the path.
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	statusErr := make(chan error, 1)
	go func() {
		err := hs.Serve(sln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("server: status listener: %w", err)
			cancel()
		}
		statusErr <- err
	}()
	err := srv.Serve(ctx, ln)
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if serr := hs.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("server: status listener shutdown: %w", serr)
	}
	if serr := <-statusErr; serr != nil {
		return serr
	}
	return err
}

// startCALife checks that the CA can sign (a server refuses to start with
// an expired active CA), logs the CA's warnings, exports its expiry
// metric when server.metrics_listen is set, and runs the CA's schedule
// (rotations due, the automatic one, retirements) and its follower (a
// change made by a CLI or another replica) until ctx is done or stop is
// called; stop waits for it to end.
func startCALife(ctx context.Context, inst *cadir.Installation, log *slog.Logger) (stop func(), err error) {
	if err := inst.Authority.Hierarchy().CheckCurrent(inst.Hierarchy.Clock.Now()); err != nil {
		return nil, fmt.Errorf("%w: the server will not start with it; make a new one with certgate ca rotate-intermediate --now --dir %s", err, inst.Config.Dir())
	}
	m, err := inst.Lifecycle(nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	reg := metrics.NewRegistry()
	caMetrics := metrics.NewCA(reg)
	if addr := inst.Config.Listen.MetricsListen; addr != "" {
		bound, err := metrics.Serve(ctx, addr, reg)
		if err != nil {
			return nil, fmt.Errorf("server.metrics_listen: %w", err)
		}
		log.Info("metrics listening", "addr", bound.String())
	}
	var wake func() <-chan struct{}
	if n, ok := inst.Store.(interface{ EventsChanged() <-chan struct{} }); ok {
		wake = n.EventsChanged
	}
	changed := calife.WatchCA(ctx, inst.Store, wake, time.Second)
	onReport := func(rep calife.Report) {
		var certs []metrics.CACert
		for _, c := range rep.CAs {
			if c.State == store.CANext || c.State == store.CAActive || c.State == store.CARetiring {
				certs = append(certs, metrics.CACert{Kind: c.Kind, Generation: c.Generation, State: c.State, KeyID: c.KeyID, NotAfter: c.NotAfter})
			}
		}
		caMetrics.Observe(certs)
		for _, w := range rep.Warnings {
			log.Warn("CA: " + w)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, calife.RunOptions{Interval: inst.Config.CA.Rotation.CheckInterval, Changed: changed, OnReport: onReport})
	}()
	return func() { cancel(); <-done }, nil
}

// startCheckpoints runs the audit log's checkpointer (audit section of the
// config) until stop, which signs the head a last time and waits.
func startCheckpoints(inst *cadir.Installation, log *slog.Logger) (*auditsign.Checkpointer, func(), error) {
	a := inst.Config.Audit
	cp, err := auditsign.New(auditsign.Options{
		Records: inst.Store, Signer: inst.AuditSigner, File: inst.Config.Path(a.Checkpoints),
		Every: a.CheckpointEvery, Interval: a.CheckpointInterval, Clock: clock.Real{}, Log: log,
	})
	if err != nil {
		return nil, nil, err
	}
	// A checkpoint of the log as it is before the API serves, so there is
	// one to fetch from the start.
	if err := cp.Sync(context.Background(), false); err != nil {
		log.Error("audit: no checkpoint signed at start", "err", err)
	}
	// Not the serving context: the final checkpoint is signed after the
	// server stopped, when no record can follow it.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cp.Run(ctx)
	}()
	return cp, func() { cancel(); <-done }, nil
}

func newServer(inst *cadir.Installation, log *slog.Logger, cp *auditsign.Checkpointer) (*server.Server, error) {
	cfg := inst.Config
	prof := ca.ServerProfile
	prof.Lifetime = cfg.Profiles.ServerLifetime
	var boot []server.ESTBootstrap
	for i, b := range cfg.EST.Bootstrap {
		data, err := os.ReadFile(cfg.Path(b.Bundle))
		if err != nil {
			return nil, fmt.Errorf("est.bootstrap[%d].bundle: %w", i, err)
		}
		roots, err := pemutil.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("est.bootstrap[%d].bundle: %s: %w", i, b.Bundle, err)
		}
		boot = append(boot, server.ESTBootstrap{Name: b.Name, Roots: roots, IdentityPrefix: b.IdentityPrefix})
	}
	return server.New(server.Options{
		ESTBootstrap: boot,
		Checkpoints:  cp, AuditKey: inst.AuditSigner.Public(),
		Authority: inst.Authority, Store: inst.Store, Clock: clock.Real{}, Log: log,
		Hostnames: cfg.Listen.Hostnames, ServerProfile: prof, MaxBodyBytes: cfg.Listen.MaxBodyBytes,
		ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout, ReadTimeout: cfg.Listen.ReadTimeout, IdleTimeout: cfg.Listen.IdleTimeout,
		FeedHeartbeat: cfg.Revocation.FeedHeartbeat,
		Status: certstatus.Settings{
			CRLValidity: cfg.Revocation.CRLValidity, OCSPValidity: cfg.Revocation.OCSPValidity, SignerLifetime: cfg.Revocation.OCSPSignerLifetime,
		},
	})
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/certstatus"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/server"
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
			log := slog.New(slog.NewJSONHandler(s.err, nil))
			return runServer(cmd.Context(), log, dir, listen, pass, func(addr string) {
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
	inst, err := cadir.Open(ctx, dir, pass, clock.Real{})
	if err != nil {
		return err
	}
	defer inst.Close()
	srv, err := newServer(inst, log)
	if err != nil {
		return err
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

func newServer(inst *cadir.Installation, log *slog.Logger) (*server.Server, error) {
	cfg := inst.Config
	prof := ca.ServerProfile
	prof.Lifetime = cfg.Profiles.ServerLifetime
	return server.New(server.Options{
		Authority: inst.Authority, Store: inst.Store, Clock: clock.Real{}, Log: log,
		Hostnames: cfg.Listen.Hostnames, ServerProfile: prof, MaxBodyBytes: cfg.Listen.MaxBodyBytes,
		ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout, ReadTimeout: cfg.Listen.ReadTimeout, IdleTimeout: cfg.Listen.IdleTimeout,
		FeedHeartbeat: cfg.Revocation.FeedHeartbeat,
		Status: certstatus.Settings{
			CRLValidity: cfg.Revocation.CRLValidity, OCSPValidity: cfg.Revocation.OCSPValidity, SignerLifetime: cfg.Revocation.OCSPSignerLifetime,
		},
	})
}

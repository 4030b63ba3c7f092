package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/metrics"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
)

// configPollInterval is how often the gateway checks its files for changes.
const configPollInterval = 2 * time.Second

func newGatewayCmd(s streams) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Run the mTLS gateway in front of HTTP and TCP upstreams",
		Long: `Run the mTLS gateway. Clients must present a certificate that chains to the
trust bundle, is valid, carries clientAuth and a SPIFFE ID of the trust
domain, and is not revoked; the first route matching a request decides
whether its identity may pass. SIGHUP or a change of the config file reloads
routes without dropping connections.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(s.err, nil))
			return runGateway(cmd.Context(), log, cfgPath, s, func(gw *gateway.Gateway) {
				fmt.Fprintf(s.out, "certgate gateway listening on https://%s\n", gw.Addr())
			})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "gateway config file (YAML)")
	return cmd
}

// runGateway serves the gateway described by cfgPath until ctx is done.
// ready is called once the listeners are up.
func runGateway(ctx context.Context, log *slog.Logger, cfgPath string, s streams, ready func(*gateway.Gateway)) error {
	if cfgPath == "" {
		return errors.New("--config: no gateway config given")
	}
	cfg, err := config.LoadGateway(cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var access *accesslog.Logger
	if cfg.AccessLog.Path == "-" {
		access = accesslog.New(s.out)
	} else if access, err = accesslog.Open(cfg.AccessLog.Path, int64(cfg.AccessLog.MaxSizeMB)<<20, cfg.AccessLog.MaxBackups); err != nil {
		return err
	}
	defer access.Close()

	holder := revocation.NewHolder()
	opts := gateway.Options{Clock: clock.Real{}, Logger: log, AccessLog: access, Revocations: holder}
	if cfg.Metrics.Listen != "" {
		reg := metrics.NewRegistry()
		opts.Metrics = metrics.NewGateway(reg, time.Now)
		addr, err := metrics.Serve(ctx, cfg.Metrics.Listen, reg)
		if err != nil {
			return err
		}
		log.Info("metrics listening", "addr", addr.String())
	}
	gw, err := gateway.New(cfg, opts)
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()

	if cfg.Server.URL != "" {
		tc, err := revocationTLS(cfg)
		if err != nil {
			return err
		}
		p := revocation.NewPuller(cfg.Server.URL, tc, cfg.Server.RevocationRefresh.Std(), clock.Real{}, log)
		go p.Run(ctx, holder)
	} else {
		log.Warn("server.url is not set: revocations are not refreshed")
	}

	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	defer signal.Stop(sighup)
	go gw.WatchConfig(ctx, cfgPath, configPollInterval, sighup)

	ready(gw)
	<-ctx.Done()
	return nil
}

// revocationTLS authenticates the gateway to the server with its own
// certificate, read from disk on every connection so a renewed
// certificate is picked up.
func revocationTLS(cfg *config.Gateway) (*tls.Config, error) {
	caPEM, err := os.ReadFile(cfg.Server.CA)
	if err != nil {
		return nil, fmt.Errorf("server.ca: %w", err)
	}
	cas, err := pemutil.ParseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("server.ca %s: %w", cfg.Server.CA, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	certPath, keyPath := cfg.Cert, cfg.Key
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certPath, keyPath)
			if err != nil {
				return nil, fmt.Errorf("gateway certificate: %w", err)
			}
			return &c, nil
		},
	}, nil
}

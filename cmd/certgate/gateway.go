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
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/metrics"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// configPollInterval is how often the gateway checks its files for changes.
const configPollInterval = 2 * time.Second

func newGatewayCmd(s streams) *cobra.Command {
	var cfgPath, tok string
	cmd := &cobra.Command{
		Use:   "gateway --config FILE [--token T]",
		Short: "Run the mTLS gateway in front of HTTP and TCP upstreams",
		Long: `Run the mTLS gateway. Clients must present a certificate that chains to the
trust bundle, is valid, carries clientAuth and a SPIFFE ID of the trust
domain, and is not revoked; the first route matching a request decides
whether its identity may pass. SIGHUP or a change of the config file reloads
routes without dropping connections.

With an identity section in the config, the gateway holds its own
certificate: on first start it redeems an enrollment token for
spiffe://TD/gateway/<name> (--token, CERTGATE_TOKEN or identity.token_file)
with its host names, and from then on renews the certificate itself; new
connections get the renewed certificate, open ones carry on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(s.err, nil))
			if tok == "" {
				tok = os.Getenv("CERTGATE_TOKEN")
			}
			return runGatewayWith(cmd.Context(), log, cfgPath, s, gatewayRun{clock: clock.Real{}, token: tok}, func(gw *gateway.Gateway) {
				fmt.Fprintf(s.out, "certgate gateway listening on https://%s\n", gw.Addr())
			})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "gateway config file (YAML)")
	cmd.Flags().StringVar(&tok, "token", "", "enrollment token for the gateway's identity, used while identity.dir holds no valid certificate (default $CERTGATE_TOKEN)")
	return cmd
}

// runGateway serves the gateway described by cfgPath until ctx is done.
// ready is called once the listeners are up.
func runGateway(ctx context.Context, log *slog.Logger, cfgPath string, s streams, ready func(*gateway.Gateway)) error {
	return runGatewayWith(ctx, log, cfgPath, s, gatewayRun{clock: clock.Real{}}, ready)
}

// gatewayRun holds what tests replace in runGatewayWith.
type gatewayRun struct {
	// clock is the gateway's time. The identity's agent waits on it when
	// it is also an agent.Clock, else on the wall clock.
	clock clock.Clock
	// token is the enrollment token for the identity section, if any.
	token string
	// firstSet bounds the wait for the first revocation set before the
	// gateway starts listening (firstSetWait if zero).
	firstSet time.Duration
}

// firstSetWait is how long the gateway waits for its first revocation set
// before it listens anyway (and answers 503 until the set arrives): long
// enough for a server on the same network, short enough that a gateway
// whose server is down still comes up and says so.
const firstSetWait = 5 * time.Second

func runGatewayWith(ctx context.Context, log *slog.Logger, cfgPath string, s streams, o gatewayRun, ready func(*gateway.Gateway)) error {
	if cfgPath == "" {
		return errors.New("--config: no gateway config given")
	}
	cfg, err := config.LoadGateway(cfgPath)
	if err != nil {
		return err
	}
	if o.firstSet == 0 {
		o.firstSet = firstSetWait
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
	opts := gateway.Options{Clock: o.clock, Logger: log, AccessLog: access, Revocations: holder}
	var own *agent.Gateway
	if cfg.Identity.Dir != "" {
		ac, ok := o.clock.(agent.Clock)
		if !ok {
			ac = clock.Real{}
		}
		dns, ips := cfg.Identity.HostNames()
		own, err = agent.SetupGateway(ctx, agent.GatewayOptions{
			Dir: cfg.Identity.Dir, TrustDomain: cfg.TrustDomain, Token: o.token, TokenFile: cfg.Identity.TokenFile, KeyType: cfg.Identity.KeyType,
			Hosts: cfg.Identity.Hosts, DNSNames: dns, IPAddresses: ips, ServerURLs: cfg.ServerURLs(), Clock: ac, Log: log,
		})
		if err != nil {
			return err
		}
		opts.Certificate = own.Certificate
		agentDone := make(chan struct{})
		go func() {
			defer close(agentDone)
			if err := own.Agent.Run(ctx); err != nil {
				c := own.Certificate()
				log.Error("the gateway's certificate can no longer be renewed; it serves with it until it expires", "err", err, "not_after", c.Leaf.NotAfter)
			}
		}()
		defer func() { cancel(); <-agentDone }()
	}
	var m *metrics.Gateway
	if cfg.Metrics.Listen != "" {
		reg := metrics.NewRegistry()
		m = metrics.NewGateway(reg, o.clock.Now)
		opts.Metrics = m
		addr, err := metrics.Serve(ctx, cfg.Metrics.Listen, reg)
		if err != nil {
			return err
		}
		log.Info("metrics listening", "addr", addr.String())
	}
	src, err := revocationSourceFor(cfg, own, o.clock, log, m)
	if err != nil {
		return err
	}
	if src != nil {
		opts.MaxStaleness = cfg.Revocation.MaxStaleness.Std()
	} else {
		log.Warn("server.url is not set: revocations are not followed")
	}
	gc, err := gateway.NewConfig(cfg)
	if err != nil {
		return err
	}
	gw, err := gateway.New(gc, opts)
	if err != nil {
		return err
	}
	if src != nil {
		first := make(chan struct{})
		var once sync.Once
		holder.OnChange(func(_, _ *revocation.Set) { once.Do(func() { close(first) }) })
		srcDone := make(chan struct{})
		go func() {
			defer close(srcDone)
			src.Run(ctx, holder)
		}()
		defer func() { cancel(); <-srcDone }()
		select {
		case <-first:
		case <-time.After(o.firstSet):
			log.Warn("no revocation data yet; listening anyway, requests get 503 until it arrives", "servers", cfg.ServerURLs(), "waited", o.firstSet)
		case <-ctx.Done():
			return nil
		}
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()

	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	defer signal.Stop(sighup)
	go gw.WatchConfig(ctx, cfgPath, configPollInterval, sighup)

	ready(gw)
	<-ctx.Done()
	return nil
}

// revocationSource builds the configured revocation source for a gateway
// with cert and key files, nil when no server is configured.
func revocationSource(cfg *config.Gateway, clk clock.Clock, log *slog.Logger, m *metrics.Gateway) (revocation.Source, error) {
	return revocationSourceFor(cfg, nil, clk, log, m)
}

// revocationSourceFor is revocationSource for a gateway with its own
// identity (own non-nil) too: it follows the server that enrolled it unless
// the config names servers, and authenticates with its current certificate.
func revocationSourceFor(cfg *config.Gateway, own *agent.Gateway, clk clock.Clock, log *slog.Logger, m *metrics.Gateway) (revocation.Source, error) {
	urls := cfg.ServerURLs()
	if len(urls) == 0 && own != nil {
		urls = []string{own.ServerURL}
	}
	if len(urls) == 0 {
		return nil, nil
	}
	tc, err := revocationTLS(cfg, own)
	if err != nil {
		return nil, err
	}
	switch cfg.Revocation.Mode {
	case config.RevocationPull:
		log.Info("revocations: polling", "servers", urls, "interval", cfg.Server.RevocationRefresh.Std(), "max_staleness", cfg.Revocation.MaxStaleness.Std())
		return revocation.NewFailoverPuller(urls, tc, cfg.Server.RevocationRefresh.Std(), clk, log), nil
	default:
		f, err := feed.NewFollower(feed.FollowerOptions{
			URLs: urls, TLSConfig: tc, Clock: clk, Log: log,
			IdleTimeout: cfg.Revocation.IdleTimeout.Std(), MaxBackoff: cfg.Revocation.MaxBackoff.Std(),
		})
		if err != nil {
			return nil, err
		}
		if m != nil {
			m.ObserveFeed(f)
		}
		log.Info("revocations: following the change feed", "servers", urls, "max_staleness", cfg.Revocation.MaxStaleness.Std())
		return f, nil
	}
}

// revocationTLS authenticates the gateway to the server with its own
// certificate: the identity's current one, or the cert and key files read
// on every connection so a renewed certificate is picked up.
func revocationTLS(cfg *config.Gateway, own *agent.Gateway) (*tls.Config, error) {
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
	if own != nil {
		return tlspolicy.Apply(&tls.Config{RootCAs: pool, GetClientCertificate: own.GetClientCertificate}), nil
	}
	certPath, keyPath := cfg.Cert, cfg.Key
	return tlspolicy.Apply(&tls.Config{
		RootCAs: pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(certPath, keyPath)
			if err != nil {
				return nil, fmt.Errorf("gateway certificate: %w", err)
			}
			return &c, nil
		},
	}), nil
}

// Package gatewayd runs a gateway the way `certgate gateway` does, from its
// config file: the access log, the gateway's own certificate and the agent
// that renews it (identity section), metrics, the revocation source (the
// server's change feed or polling), the wait for the first revocation set,
// the listeners, and reloads when the config file changes or on a signal.
//
// It is the runtime around internal/gateway, shared by the command,
// `certgate quickstart` and the tests that run a real gateway in-process.
// It is not the proxy (internal/gateway) nor its config schema
// (internal/config).
package gatewayd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/metrics"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/tlspolicy"
	"github.com/certgate/certgate/internal/usage"
	"github.com/certgate/certgate/internal/wire"
)

// ConfigPollInterval is how often the gateway checks its files for changes.
const ConfigPollInterval = 2 * time.Second

// FirstSetWait is how long the gateway waits for its first revocation set
// before it listens anyway (and answers 503 until the set arrives): long
// enough for a server on the same network, short enough that a gateway
// whose server is down still comes up and says so.
const FirstSetWait = 5 * time.Second

// Options say which gateway to run and what the caller replaces.
type Options struct {
	Config string       // the gateway's YAML config file
	Log    *slog.Logger // nil: discarded
	// Out receives the access log when the config's access_log.path is "-".
	Out io.Writer
	// Clock is the gateway's time (clock.Real{} if nil). The identity's
	// agent waits on it when it is also an agent.Clock, else on the wall
	// clock.
	Clock clock.Clock
	// Token is the enrollment token for the identity section, if any.
	Token string
	// ForceEnroll lets the enrollment with Token move another identity's
	// files in identity.dir to a backup directory (agent.GatewayOptions).
	ForceEnroll bool
	// FirstSetWait bounds the wait for the first revocation set
	// ([FirstSetWait] if zero).
	FirstSetWait time.Duration
	// Holder receives the revocation sets (a new one if nil): a test hooks
	// its changes.
	Holder *revocation.Holder
	// Reload receives a value when the routes should be reloaded now
	// (SIGHUP); the config file is also polled.
	Reload <-chan os.Signal
	// Ready is called once the listeners are up.
	Ready func(*gateway.Gateway)
	// AuditWitnessInterval is how often the audit witness looks at the
	// server's checkpoint ([AuditWitnessInterval] if zero).
	AuditWitnessInterval time.Duration
}

// Run serves the gateway until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Config == "" {
		return errors.New("gatewayd: no config file given")
	}
	cfg, err := config.LoadGateway(o.Config)
	if err != nil {
		return err
	}
	if o.FirstSetWait == 0 {
		o.FirstSetWait = FirstSetWait
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The metrics are made below; lines dropped before count from then.
	var dropMetric atomic.Pointer[metrics.Gateway]
	access, err := openAccessLog(&cfg.AccessLog, out, o.Clock, log, func(output string, n uint64) {
		if m := dropMetric.Load(); m != nil {
			m.AccessLogDropped(output, n)
		}
	})
	if err != nil {
		return err
	}
	defer access.Close()

	holder := o.Holder
	if holder == nil {
		holder = revocation.NewHolder()
	}
	opts := gateway.Options{Clock: o.Clock, Logger: log, AccessLog: access, Revocations: holder}
	var own *agent.Gateway
	if cfg.Identity.Dir != "" {
		ac, ok := o.Clock.(agent.Clock)
		if !ok {
			ac = clock.Real{}
		}
		dns, ips := cfg.Identity.HostNames()
		own, err = agent.SetupGateway(ctx, agent.GatewayOptions{
			Dir: cfg.Identity.Dir, TrustDomain: cfg.TrustDomain, Token: o.Token, TokenFile: cfg.Identity.TokenFile, KeyType: cfg.Identity.KeyType, KeyStore: cfg.Identity.KeyStore,
			Hosts: cfg.Identity.Hosts, DNSNames: dns, IPAddresses: ips, ServerURLs: cfg.ServerURLs(), Force: o.ForceEnroll, Clock: ac, Log: log,
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
	var witnessMetrics *metrics.AuditWitness
	if cfg.Metrics.Listen != "" {
		reg := metrics.NewRegistry()
		m = metrics.NewGateway(reg, o.Clock.Now)
		witnessMetrics = metrics.NewAuditWitness(reg)
		opts.Metrics = m
		dropMetric.Store(m)
		addr, err := metrics.Serve(ctx, cfg.Metrics.Listen, reg)
		if err != nil {
			return err
		}
		log.Info("metrics listening", "addr", addr.String())
	}
	// The feed carries the CA's state; the gateway it feeds is made below.
	var fed atomic.Pointer[gateway.Gateway]
	// The legacy keys may arrive before the gateway is made: the latest
	// set is kept and handed over under one lock, so none is lost and
	// none applied out of order.
	var legacyMu sync.Mutex
	var legacySet *wire.LegacyKeySet
	applyLegacy := func() {
		if gw := fed.Load(); gw != nil && legacySet != nil {
			if err := gw.SetLegacyKeys(*legacySet); err != nil {
				log.Warn("legacy keys from the feed refused", "err", err)
			}
		}
	}
	src, err := revocationSource(cfg, own, o.Clock, log, m, func(st wire.CA) {
		if gw := fed.Load(); gw != nil {
			gw.SetIntermediates("feed", caIntermediates(st, log))
		}
	}, func(st wire.LegacyKeySet) {
		legacyMu.Lock()
		defer legacyMu.Unlock()
		legacySet = &st
		applyLegacy()
	})
	if err != nil {
		return err
	}
	if src != nil {
		opts.MaxStaleness = cfg.Revocation.MaxStaleness.Std()
	} else {
		log.Warn("server.url is not set: revocations are not followed")
	}
	if src != nil {
		table, shipper, err := usageShipper(cfg, own, log)
		if err != nil {
			return err
		}
		opts.Usage = table
		shipDone := make(chan struct{})
		go func() {
			defer close(shipDone)
			shipper.Run(ctx)
		}()
		defer func() { cancel(); <-shipDone }()
		if own != nil {
			stopWitness, err := startAuditWitness(ctx, cfg, own, o.AuditWitnessInterval, log, witnessMetrics)
			if err != nil {
				return err
			}
			defer func() { cancel(); stopWitness() }()
		}
	}
	gc, err := gateway.NewConfig(cfg)
	if err != nil {
		return err
	}
	gw, err := gateway.New(gc, opts)
	if err == nil {
		fed.Store(gw)
		legacyMu.Lock()
		applyLegacy()
		legacyMu.Unlock()
	}
	if err != nil {
		return err
	}
	if cfg.Revocation.Mode == config.RevocationPull && slices.ContainsFunc(cfg.Routes, func(r config.Route) bool { return r.LegacyKeys.Header != "" }) {
		log.Warn("a route takes legacy keys, but revocation.mode is pull: legacy keys come over the change feed only, so none is accepted; set revocation.mode: feed")
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
		case <-time.After(o.FirstSetWait):
			log.Warn("no revocation data yet; listening anyway, requests get 503 until it arrives", "servers", cfg.ServerURLs(), "waited", o.FirstSetWait)
		case <-ctx.Done():
			return nil
		}
	}
	if err := gw.Start(ctx); err != nil {
		return err
	}
	defer gw.Close()

	go gw.WatchConfig(ctx, o.Config, ConfigPollInterval, o.Reload)

	if o.Ready != nil {
		o.Ready(gw)
	}
	<-ctx.Done()
	stopping := time.Now()
	open := gw.Connections()
	log.Info("gateway shutting down: no new connections", "open_connections", open)
	gw.Close()
	log.Info("gateway stopped", "closed_connections", open, "took", time.Since(stopping).Round(time.Millisecond))
	return nil
}

// revocationSource builds the configured revocation source, nil when no
// server is configured. A gateway with its own identity (own non-nil)
// follows the server that enrolled it unless the config names servers,
// and authenticates with its current certificate; one with cert and key
// files reads them on every connection.
// caIntermediates are the published intermediates of the CA's state: the
// next one before it signs, the active one, retiring ones and the
// cross-certificates of a root rotation, so that clients of any of them
// that send only their leaf verify.
func caIntermediates(st wire.CA, log *slog.Logger) []*x509.Certificate {
	if st.Intermediates == "" {
		return []*x509.Certificate{}
	}
	certs, err := pemutil.ParseCertificates([]byte(st.Intermediates))
	if err != nil {
		log.Warn("the CA state from the feed has intermediates that do not parse; keeping the ones known", "err", err)
		return nil
	}
	return certs
}

func revocationSource(cfg *config.Gateway, own *agent.Gateway, clk clock.Clock, log *slog.Logger, m *metrics.Gateway, onCA func(wire.CA), onLegacy func(wire.LegacyKeySet)) (revocation.Source, error) {
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
			OnCA: onCA, OnLegacyKeys: onLegacy,
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

// usageShipper counts usage per identity and route and sends it to the
// servers the revocations come from, with the gateway's own certificate.
func usageShipper(cfg *config.Gateway, own *agent.Gateway, log *slog.Logger) (*usage.Table, *usage.Shipper, error) {
	urls := cfg.ServerURLs()
	if len(urls) == 0 && own != nil {
		urls = []string{own.ServerURL}
	}
	tc, err := revocationTLS(cfg, own)
	if err != nil {
		return nil, nil, err
	}
	table := usage.NewTable(usage.Options{MaxEntries: cfg.Usage.MaxEntries, MaxSources: cfg.Usage.Sharing.MaxSources, Window: cfg.Usage.Sharing.Window.Std()})
	sh := &usage.Shipper{Table: table, Interval: cfg.Usage.FlushInterval.Std(), Log: log, Permanent: func(err error) bool {
		var ae *apiclient.Error
		return errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusRequestEntityTooLarge)
	}}
	for _, u := range urls {
		cl, err := apiclient.New(apiclient.Options{ServerURL: u, Roots: tc.RootCAs, GetClientCertificate: tc.GetClientCertificate, Timeout: 30 * time.Second})
		if err != nil {
			return nil, nil, fmt.Errorf("usage: %w", err)
		}
		sh.Senders = append(sh.Senders, cl)
	}
	log.Info("usage: reporting to the server", "interval", sh.Interval, "max_entries", cfg.Usage.MaxEntries)
	return table, sh, nil
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

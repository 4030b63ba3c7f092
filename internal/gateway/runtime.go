package gateway

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/certgate/certgate/internal/ratelimit"
	"os"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// runtime is one generation of configuration with what it needs at run
// time: the trust material with its cache, the upstream pools, the
// gateway's certificate. A reload builds a new one and swaps it in;
// requests in flight finish with the one they started with.
type runtime struct {
	cfg    *Config
	trust  *trust
	routes []*httpRoute // by authz route index
	tcp    map[string]*tcpRouteConfig
	cert   *tls.Certificate // loaded from the config's files; nil with Options.Certificate
	selfID string           // the gateway's own SPIFFE ID, for X-Forwarded-Client-Cert By=
	// limiters are the rate limiters of routes, by route and limit
	// (kept by the next runtime where they match).
	limiters map[string]*ratelimit.Limiter
	// legacy: a route takes legacy keys, so a connection without a
	// certificate is served by serveLegacy (legacykey.go).
	legacy bool
}

type httpRoute struct {
	name    string
	up      *upstream
	hdr     headerSet
	limiter *ratelimit.Limiter // nil: no rate limit
	legacy  *legacyRoute       // nil: no legacy keys
}

// headerSet says which identity headers a route sends upstream.
type headerSet struct {
	clientCert, clientCertChain, xfcc, identity, serial bool
}

// buildRuntime builds a runtime for cfg, reusing upstream pools from pools
// (keyed by upstream identity) where they match. With loadCert it loads
// the gateway's certificate from the config's cert and key files; own
// returns the gateway's current certificate when an upstream asks for it
// (and, without loadCert, names the gateway).
func buildRuntime(cfg *Config, pools map[string]*upstream, limiters map[string]*ratelimit.Limiter, own func() *tls.Certificate, loadCert bool, inter []*x509.Certificate) (*runtime, error) {
	rt := &runtime{cfg: cfg, trust: newTrust(cfg.trustDomain, cfg.roots, inter), tcp: map[string]*tcpRouteConfig{}, limiters: map[string]*ratelimit.Limiter{}}
	self := own
	if loadCert {
		var err error
		if rt.cert, err = loadKeyPair(cfg.certFile, cfg.keyFile); err != nil {
			return nil, err
		}
		self = func() *tls.Certificate { return rt.cert }
	}
	// Renewal keeps the identity, so it is read once per generation.
	if id, err := identity.FromCertificate(self().Leaf); err == nil {
		rt.selfID = id.String()
	}
	for i := range cfg.routes {
		r := &cfg.routes[i]
		up, err := buildUpstream(cfg, r, own, pools)
		if err != nil {
			return nil, err
		}
		hr := &httpRoute{name: r.name, up: up, hdr: r.hdr, legacy: r.legacy}
		rt.legacy = rt.legacy || r.legacy != nil
		if r.rateLimit != nil {
			// A reload keeps the buckets of a route whose limit did not
			// change, so it cannot be used to reset them.
			key := fmt.Sprintf("%s|%v|%d", r.name, *r.rateLimit, r.rateLimitSize)
			if hr.limiter = limiters[key]; hr.limiter == nil {
				if hr.limiter, err = ratelimit.New(*r.rateLimit, r.rateLimitSize); err != nil {
					return nil, fmt.Errorf("gateway: route %q: %w", r.name, err)
				}
			}
			rt.limiters[key] = hr.limiter
		}
		rt.routes = append(rt.routes, hr)
	}
	for i := range cfg.tcpRoutes {
		rt.tcp[cfg.tcpRoutes[i].name] = &cfg.tcpRoutes[i]
	}
	return rt, nil
}

func buildUpstream(cfg *Config, r *routeConfig, own func() *tls.Certificate, pools map[string]*upstream) (*upstream, error) {
	to := &cfg.timeouts
	key := fmt.Sprintf("%s|%s|%s|%t|%v|%v|%v|%d", r.upstream, r.upstreamCAKey, r.upstreamServerName, r.upstreamClientCert,
		to.upstreamDial, to.upstreamHeader, to.upstreamIdle, to.upstreamMaxIdle)
	if up, ok := pools[key]; ok {
		return up, nil
	}
	o := upstreamOptions{
		rawURL:        r.upstream,
		dialTimeout:   to.upstreamDial,
		headerTimeout: to.upstreamHeader,
		idleTimeout:   to.upstreamIdle,
		maxIdle:       to.upstreamMaxIdle,
	}
	up, err := newUpstream(o)
	if err != nil {
		return nil, err
	}
	if up.scheme == "https" {
		tc := tlspolicy.Apply(&tls.Config{ServerName: up.hostName, NextProtos: []string{"http/1.1"}})
		if r.upstreamServerName != "" {
			tc.ServerName = r.upstreamServerName
		}
		if r.upstreamCA != nil {
			tc.RootCAs = x509.NewCertPool()
			for _, c := range r.upstreamCA {
				tc.RootCAs.AddCert(c)
			}
		}
		if r.upstreamClientCert {
			// Asked at each new upstream connection, so a renewed or
			// reloaded certificate is used without rebuilding the pool.
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return own(), nil }
			up.clientCert = own
		}
		up.tlsConfig = tc
	}
	up.key = key
	up.initTransport()
	pools[key] = up
	return up, nil
}

// loadKeyPair reads a certificate chain and its key.
func loadKeyPair(certPath, keyPath string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("gateway: cert: %w", err)
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("gateway: cert %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("gateway: key: %w", err)
	}
	key, err := pemutil.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("gateway: key %s: %w", keyPath, err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	if !publicKeysEqual(certs[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("gateway: key %s does not match the certificate in %s", keyPath, certPath)
	}
	return tc, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

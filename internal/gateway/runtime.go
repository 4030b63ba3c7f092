package gateway

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// runtime is one generation of configuration turned into the values the
// request path uses. A reload builds a new one and swaps it in; requests in
// flight finish with the one they started with.
type runtime struct {
	cfg    *config.Gateway
	trust  *trust
	roots  []*x509.Certificate
	policy *authz.Policy
	routes []*httpRoute // by authz route index
	tcp    map[string]*tcpRoute
	cert   *tls.Certificate // loaded from the config's files; nil with Options.Certificate
	selfID string           // the gateway's own SPIFFE ID, for X-Forwarded-Client-Cert By=
}

type httpRoute struct {
	name string
	up   *upstream
	hdr  headerSet
}

// headerSet says which identity headers a route sends upstream.
type headerSet struct {
	clientCert, clientCertChain, xfcc, identity, serial bool
}

type tcpRoute struct {
	name    string
	listen  string
	backend string
	allow   authz.Rule
}

// buildRuntime reads the files cfg names and builds a runtime, reusing
// upstream pools from pools (keyed by upstream identity) where they match.
// With loadCert it loads the gateway's certificate from the config's cert
// and key files; own returns the gateway's current certificate when an
// upstream asks for it (and, without loadCert, names the gateway).
func buildRuntime(cfg *config.Gateway, pools map[string]*upstream, own func() *tls.Certificate, loadCert bool) (*runtime, error) {
	bundle, err := os.ReadFile(cfg.Bundle)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle: %w", err)
	}
	roots, err := pemutil.ParseCertificates(bundle)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle %s: %w", cfg.Bundle, err)
	}
	rt := &runtime{cfg: cfg, trust: newTrust(cfg.TrustDomain, roots), roots: roots, tcp: map[string]*tcpRoute{}}
	self := own
	if loadCert {
		if rt.cert, err = loadKeyPair(cfg.Cert, cfg.Key); err != nil {
			return nil, err
		}
		self = func() *tls.Certificate { return rt.cert }
	}
	// Renewal keeps the identity, so it is read once per generation.
	if id, err := identity.FromCertificate(self().Leaf); err == nil {
		rt.selfID = id.String()
	}
	rcs := make([]authz.RouteConfig, len(cfg.Routes))
	for i, r := range cfg.Routes {
		rcs[i] = authz.RouteConfig{Name: r.Name, Host: r.Host, PathPrefix: r.PathPrefix, Methods: r.Methods, Allow: r.Allow}
		up, err := buildUpstream(cfg, r, own, pools)
		if err != nil {
			return nil, err
		}
		rt.routes = append(rt.routes, &httpRoute{name: r.Name, up: up, hdr: headerSet{
			clientCert:      config.HeaderOn(r.Headers.ClientCert),
			clientCertChain: config.HeaderOn(r.Headers.ClientCertChain),
			xfcc:            config.HeaderOn(r.Headers.XFCC),
			identity:        config.HeaderOn(r.Headers.Identity),
			serial:          config.HeaderOn(r.Headers.Serial),
		}})
	}
	if rt.policy, err = authz.New(rcs); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, r := range cfg.TCPRoutes {
		rule, err := authz.NewRule(r.Allow)
		if err != nil {
			return nil, fmt.Errorf("gateway: tcp route %q: %w", r.Name, err)
		}
		rt.tcp[r.Name] = &tcpRoute{name: r.Name, listen: r.Listen, backend: r.Backend, allow: rule}
	}
	return rt, nil
}

func buildUpstream(cfg *config.Gateway, r config.Route, own func() *tls.Certificate, pools map[string]*upstream) (*upstream, error) {
	key := fmt.Sprintf("%s|%s|%s|%t|%v|%v|%v|%d", r.Upstream, r.UpstreamCA, r.UpstreamServerName, r.UpstreamClientCert,
		cfg.Timeouts.UpstreamDial, cfg.Timeouts.UpstreamHeader, cfg.Timeouts.UpstreamIdle, cfg.Timeouts.UpstreamMaxIdle)
	if up, ok := pools[key]; ok {
		return up, nil
	}
	o := upstreamOptions{
		rawURL:        r.Upstream,
		dialTimeout:   cfg.Timeouts.UpstreamDial.Std(),
		headerTimeout: cfg.Timeouts.UpstreamHeader.Std(),
		idleTimeout:   cfg.Timeouts.UpstreamIdle.Std(),
		maxIdle:       cfg.Timeouts.UpstreamMaxIdle,
	}
	up, err := newUpstream(o)
	if err != nil {
		return nil, err
	}
	if up.scheme == "https" {
		tc := tlspolicy.Apply(&tls.Config{ServerName: up.hostName, NextProtos: []string{"http/1.1"}})
		if r.UpstreamServerName != "" {
			tc.ServerName = r.UpstreamServerName
		}
		if r.UpstreamCA != "" {
			data, err := os.ReadFile(r.UpstreamCA)
			if err != nil {
				return nil, fmt.Errorf("gateway: route %q: upstream_ca: %w", r.Name, err)
			}
			cas, err := pemutil.ParseCertificates(data)
			if err != nil {
				return nil, fmt.Errorf("gateway: route %q: upstream_ca %s: %w", r.Name, r.UpstreamCA, err)
			}
			tc.RootCAs = x509.NewCertPool()
			for _, c := range cas {
				tc.RootCAs.AddCert(c)
			}
		}
		if r.UpstreamClientCert {
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

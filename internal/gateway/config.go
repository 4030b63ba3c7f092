package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway/canon"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/ratelimit"
)

// Config is the gateway's runtime configuration: the YAML schema
// (config.Gateway) once it was decoded, defaulted and validated, turned
// into the values the request path reads, with the trust bundle and
// upstream CA files it names read and the routes compiled. Build it with
// [NewConfig] or [LoadConfig]; it is immutable and may be shared.
//
// The gateway's own key is not read here but by [New] and
// [Gateway.Reload], so that [Explain] (policy test) works from a config
// alone, without access to the key.
type Config struct {
	listen      string
	trustDomain string
	roots       []*x509.Certificate
	// intermediates are CA certificates that may complete a client's
	// chain: those after the leaf in the gateway's own certificate file
	// (its issuer is the CA's current intermediate).
	intermediates []*x509.Certificate
	certFile      string // "" when Options.Certificate supplies the certificate
	keyFile       string
	routes        []routeConfig
	policy        *authz.Policy // routes compiled, same order
	tcpRoutes     []tcpRouteConfig
	timeouts      timeouts
	maxHeader     int
	logQuery      bool
	paths         canon.Policy
	methods       canon.Methods
	// files are the files the config was read from, watched for changes.
	files []string
	// schema is the file as loaded: a reload compares it setting by
	// setting with the running one (reloadPlan).
	schema *config.Gateway
}

type timeouts struct {
	handshake, readHeader, idle                time.Duration
	upstreamDial, upstreamHeader, upstreamIdle time.Duration
	upstreamMaxIdle                            int
}

type routeConfig struct {
	name               string
	upstream           string
	upstreamCA         []*x509.Certificate // nil: system roots
	upstreamCAKey      string              // identifies the CA content, for pool reuse
	upstreamServerName string
	upstreamClientCert bool
	hdr                headerSet
	// rateLimit is the route's per-identity limit; nil: none.
	rateLimit     *ratelimit.Policy
	rateLimitSize int
	legacy        *legacyRoute // nil: the route takes no legacy key
}

type tcpRouteConfig struct {
	name, listen, backend string
	allow                 authz.Rule
}

// LoadConfig reads, checks and compiles the gateway config at path.
func LoadConfig(path string) (*Config, error) {
	c, err := config.LoadGateway(path)
	if err != nil {
		return nil, err
	}
	return NewConfig(c)
}

// NewConfig compiles a validated schema: it reads the trust bundle and
// the upstream CA files and builds the route policy.
func NewConfig(c *config.Gateway) (*Config, error) {
	bundle, err := os.ReadFile(c.Bundle)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle: %w", err)
	}
	roots, err := pemutil.ParseCertificates(bundle)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle %s: %w", c.Bundle, err)
	}
	t := c.Timeouts
	cfg := &Config{
		listen: c.Listen, trustDomain: c.TrustDomain, roots: roots,
		certFile: c.Cert, keyFile: c.Key,
		timeouts: timeouts{
			handshake: t.Handshake.Std(), readHeader: t.ReadHeader.Std(), idle: t.Idle.Std(),
			upstreamDial: t.UpstreamDial.Std(), upstreamHeader: t.UpstreamHeader.Std(), upstreamIdle: t.UpstreamIdle.Std(),
			upstreamMaxIdle: t.UpstreamMaxIdle,
		},
		maxHeader: c.MaxHeaderBytes, logQuery: c.AccessLog.Query,
		files:  []string{c.Bundle},
		schema: c,
	}
	if c.Cert != "" {
		cfg.files = append(cfg.files, c.Cert, c.Key)
	}
	if cfg.intermediates, err = ownChainIntermediates(c); err != nil {
		return nil, err
	}
	if cfg.paths, err = pathPolicy(c.Paths); err != nil {
		return nil, err
	}
	var routeMethods []string
	rcs := make([]authz.RouteConfig, len(c.Routes))
	for i, r := range c.Routes {
		// A prefix must be canonical, or no canonical path could match it
		// the way a decoding upstream reads it.
		if cp, perr := cfg.paths.Path(r.PathPrefix); perr != nil || cp.Match != r.PathPrefix || strings.Contains(r.PathPrefix, "%2F") {
			want := cp.Match
			if perr != nil {
				want = "(none: " + perr.Msg + ")"
			}
			return nil, fmt.Errorf("gateway: route %q: path_prefix %q is not in canonical form; canonical: %s", r.Name, r.PathPrefix, want)
		}
		routeMethods = append(routeMethods, r.Methods...)
		rcs[i] = authz.RouteConfig{Name: r.Name, Host: r.Host, PathPrefix: r.PathPrefix, Methods: r.Methods, Allow: r.Allow}
		rc := routeConfig{
			name: r.Name, upstream: r.Upstream, upstreamServerName: r.UpstreamServerName, upstreamClientCert: r.UpstreamClientCert,
			hdr: headerSet{
				clientCert:      config.HeaderOn(r.Headers.ClientCert),
				clientCertChain: config.HeaderOn(r.Headers.ClientCertChain),
				xfcc:            config.HeaderOn(r.Headers.XFCC),
				identity:        config.HeaderOn(r.Headers.Identity),
				serial:          config.HeaderOn(r.Headers.Serial),
			},
		}
		if rc.legacy, err = compileLegacy(r.LegacyKeys.Header, r.LegacyKeys.Until, r.LegacyKeys.Link); err != nil {
			return nil, fmt.Errorf("gateway: route %q: legacy_keys.until: %w", r.Name, err)
		}
		if rl := r.RateLimit; rl.RequestsPerSecond > 0 {
			pol := &ratelimit.Policy{Default: ratelimit.Limit{RPS: rl.RequestsPerSecond, Burst: rl.Burst}}
			for _, o := range rl.Overrides {
				pol.Overrides = append(pol.Overrides, ratelimit.Override{Identities: o.Identities, Limit: ratelimit.Limit{RPS: o.RequestsPerSecond, Burst: o.Burst}})
			}
			rc.rateLimit, rc.rateLimitSize = pol, rl.MaxIdentities
		}
		if r.UpstreamCA != "" {
			data, err := os.ReadFile(r.UpstreamCA)
			if err != nil {
				return nil, fmt.Errorf("gateway: route %q: upstream_ca: %w", r.Name, err)
			}
			if rc.upstreamCA, err = pemutil.ParseCertificates(data); err != nil {
				return nil, fmt.Errorf("gateway: route %q: upstream_ca %s: %w", r.Name, r.UpstreamCA, err)
			}
			rc.upstreamCAKey = fmt.Sprintf("%x", sha256.Sum256(data))
			cfg.files = append(cfg.files, r.UpstreamCA)
		}
		cfg.routes = append(cfg.routes, rc)
	}
	cfg.methods = canon.NewMethods(routeMethods...)
	if cfg.policy, err = authz.New(rcs); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, r := range c.TCPRoutes {
		rule, err := authz.NewRule(r.Allow)
		if err != nil {
			return nil, fmt.Errorf("gateway: tcp route %q: %w", r.Name, err)
		}
		cfg.tcpRoutes = append(cfg.tcpRoutes, tcpRouteConfig{name: r.Name, listen: r.Listen, backend: r.Backend, allow: rule})
	}
	return cfg, nil
}

// ownChainIntermediates reads the certificates after the leaf in the
// gateway's own certificate file (cert, or cert.pem in identity.dir once
// it exists): public data, so the key is not read.
func ownChainIntermediates(c *config.Gateway) ([]*x509.Certificate, error) {
	path := c.Cert
	if path == "" && c.Identity.Dir != "" {
		path = filepath.Join(c.Identity.Dir, "cert.pem")
		if _, err := os.Stat(path); err != nil {
			return nil, nil // not enrolled yet
		}
	}
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: cert: %w", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("gateway: cert %s: %w", path, err)
	}
	return certs[1:], nil
}

func pathPolicy(p config.GatewayPaths) (canon.Policy, error) {
	var out canon.Policy
	switch p.RepeatedSlashes {
	case config.PathsMerge, "":
	case config.PathsReject:
		out.RepeatedSlashes = canon.RepeatedSlashesReject
	default:
		return out, fmt.Errorf("gateway: paths.repeated_slashes: unknown value %q", p.RepeatedSlashes)
	}
	switch p.EscapedSlashes {
	case config.PathsReject, "":
	case config.PathsDecode:
		out.EscapedSlashes = canon.EscapedSlashesDecode
	case config.PathsKeep:
		out.EscapedSlashes = canon.EscapedSlashesKeep
	default:
		return out, fmt.Errorf("gateway: paths.escaped_slashes: unknown value %q", p.EscapedSlashes)
	}
	switch p.Semicolons {
	case config.PathsReject, "":
	case config.PathsAllow:
		out.Semicolons = canon.SemicolonsAllow
	default:
		return out, fmt.Errorf("gateway: paths.semicolons: unknown value %q", p.Semicolons)
	}
	return out, nil
}

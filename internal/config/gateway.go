package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"go.yaml.in/yaml/v3"
)

// Gateway is the schema of gateway.yaml.
type Gateway struct {
	// Listen is the address of the mTLS listener for HTTP routes.
	Listen string `yaml:"listen" doc:"address of the mTLS listener for HTTP routes"`
	// TrustDomain is the trust domain client identities must belong to.
	TrustDomain string `yaml:"trust_domain" doc:"trust domain every client identity must belong to (required)" example:"example.org"`
	// Bundle is the PEM file of trusted roots for client certificates;
	// with identity.dir it defaults to the bundle.pem enrollment wrote
	// there.
	Bundle string `yaml:"bundle" doc:"PEM file of the roots client certificates must chain to (default: identity.dir/bundle.pem)"`
	// Cert and Key are the gateway's own certificate chain and key, for an
	// operator who brings and renews them; or set Identity instead.
	Cert string `yaml:"cert" doc:"the gateway's own certificate chain, for an operator who brings and renews it; leave empty with identity.dir"`
	Key  string `yaml:"key" doc:"its private key (with cert)"`
	// Identity makes the gateway enroll and renew its own certificate.
	Identity GatewayIdentity `yaml:"identity" doc:"the gateway enrolls and renews its own certificate (instead of cert and key)"`

	Server     GatewayServer     `yaml:"server" doc:"where revocations come from"`
	Revocation GatewayRevocation `yaml:"revocation" doc:"how the revoked set is kept current, and what happens when it cannot be"`
	Metrics    GatewayMetrics    `yaml:"metrics"`
	AccessLog  GatewayAccessLog  `yaml:"access_log" doc:"one JSON line per request, connection or refused handshake"`
	// Usage is what the gateway counts per identity and route and reports
	// to the server (when server.url or identity is set).
	Usage    GatewayUsage    `yaml:"usage" doc:"what the gateway counts per identity and route and reports to the server"`
	Timeouts GatewayTimeouts `yaml:"timeouts" doc:"bounds on each phase of a connection"`
	// MaxHeaderBytes bounds the request line plus headers.
	MaxHeaderBytes int `yaml:"max_header_bytes" doc:"largest request line plus headers, 1024..1048576"`
	// Paths says what the gateway does with request paths an upstream
	// could read more than one way; see GatewayPaths.
	Paths GatewayPaths `yaml:"paths" doc:"what to do with request paths an upstream could read more than one way (the canonical path is what is routed and forwarded)"`

	Routes    []Route    `yaml:"routes" doc:"HTTP routes: the first whose host, path prefix and methods match a request decides it"`
	TCPRoutes []TCPRoute `yaml:"tcp_routes" doc:"TCP routes: each pipes bytes from its own mTLS listener to a backend"`
}

// GatewayIdentity is the gateway's own enrolled identity: on first start it
// redeems a token for spiffe://TD/gateway/<name> with its host names, and
// from then on renews the certificate itself, the way `certgate agent`
// does. The one certificate serves TLS to clients and authenticates the
// gateway to the server's feed and to https upstreams.
type GatewayIdentity struct {
	// Dir holds key.pem, cert.pem, bundle.pem and server.url, as
	// `certgate enroll` writes them; the gateway replaces them on renewal.
	Dir string `yaml:"dir" doc:"the gateway enrolls and renews its own certificate here: key.pem, cert.pem, bundle.pem, server.url" example:"/var/lib/certgate-gateway"`
	// Hosts are the DNS names and IP addresses clients reach the gateway
	// by; they go into its certificate.
	Hosts []string `yaml:"hosts" doc:"DNS names and IP addresses clients reach the gateway by; they go into its certificate" example:"[api.example.org]"`
	// TokenFile holds the enrollment token for the first start (the
	// --token flag and CERTGATE_TOKEN come first). It is read only while
	// Dir holds no usable certificate.
	TokenFile string `yaml:"token_file" doc:"enrollment token for the first start (--token and $CERTGATE_TOKEN come first); read only while dir holds no usable certificate"`
	// KeyType is the type of key made at enrollment (default ecdsa-p256);
	// renewals keep the type.
	KeyType string `yaml:"key_type" doc:"key made at enrollment: ecdsa-p256 (default), ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096" example:"ecdsa-p256"`
	// KeyStore is the device the key is made in at enrollment, and by
	// each renewal: a PKCS#11 token's RFC 7512 URI or a TPM's tpm: URI.
	// Empty: key.pem.
	KeyStore string `yaml:"key_store" doc:"make the key inside a device instead of key.pem, at enrollment and each renewal: a PKCS#11 token (pkcs11:token=T?module-path=M&pin-source=file:P) or a TPM 2.0 (tpm:device=/dev/tpmrm0, tpm:simulator=HOST:PORT); the directory records the key's URI in key.uri"`
}

// HostNames splits Hosts into DNS names and IP addresses.
func (i GatewayIdentity) HostNames() (dns []string, ips []net.IP) {
	for _, h := range i.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// MaxGatewayHosts bounds identity.hosts: the CA refuses requests with more
// names (csr.MaxHostnames).
const MaxGatewayHosts = 32

// GatewayServer says where revocation data comes from.
type GatewayServer struct {
	// URL of the certgate server. With neither URL nor URLs the gateway
	// follows no revocations.
	URL string `yaml:"url" doc:"certgate server followed for revocations (https://); with neither url nor urls no revocation is followed" example:"https://ca.example.org:8444"`
	// URLs lists server replicas; the gateway follows one at a time and
	// fails over to the next. URL, if set too, comes first.
	URLs []string `yaml:"urls" doc:"server replicas, followed one at a time with failover (url, if set, comes first)"`
	// CA verifies the server's certificate; defaults to the bundle.
	CA string `yaml:"ca" doc:"PEM roots that verify the server's certificate (default: bundle)"`
	// RevocationRefresh is the pull interval.
	RevocationRefresh Duration `yaml:"revocation_refresh" doc:"poll interval in pull mode"`
}

// Revocation modes.
const (
	// RevocationFeed follows the server's change feed (GET /v1/feed): a
	// revocation reaches the gateway as soon as it is committed.
	RevocationFeed = "feed"
	// RevocationPull polls GET /v1/revocations every
	// server.revocation_refresh, for servers without the feed.
	RevocationPull = "pull"
)

// GatewayRevocation configures how the gateway keeps its revoked set
// current and what it does when it cannot.
type GatewayRevocation struct {
	// Mode is "feed" (the default with a server URL) or "pull".
	Mode string `yaml:"mode" doc:"feed (the change feed: a revocation arrives as soon as it is committed; the default with a server) or pull (GET /v1/revocations every revocation_refresh)"`
	// MaxStaleness is how long the gateway keeps serving on the set it
	// knows after it last heard from the server; past it, every request
	// gets 503 until the server is back (fail closed).
	MaxStaleness Duration `yaml:"max_staleness" doc:"how long the gateway serves on the revoked set it knows after it last heard from the server; past it every request gets 503 (fail closed)"`
	// IdleTimeout drops a feed connection that delivered nothing, not
	// even a heartbeat, for this long, and reconnects.
	IdleTimeout Duration `yaml:"idle_timeout" doc:"a feed connection silent this long (not even a heartbeat) is dropped and reopened"`
	// MaxBackoff bounds the delay between feed reconnection attempts.
	MaxBackoff Duration `yaml:"max_backoff" doc:"longest wait between feed reconnection attempts"`
}

// GatewayMetrics configures the Prometheus listener.
type GatewayMetrics struct {
	// Listen is the metrics address; empty disables metrics.
	Listen string `yaml:"listen" doc:"Prometheus /metrics address; empty: off"`
}

// GatewayAccessLog configures the access log (docs/gateway.md, "The
// access log"): a file, standard output and a syslog collector, at once.
type GatewayAccessLog struct {
	// Path is a file, or "-" (the default) for standard output only.
	Path string `yaml:"path" doc:"access log file, or - for standard output only"`
	// Stdout also writes every line to standard output when Path is a
	// file.
	Stdout bool `yaml:"stdout" doc:"also write every line to standard output when path is a file"`
	// MaxSizeMB rotates the file before it grows past this size.
	MaxSizeMB int `yaml:"max_size_mb" doc:"rotate the file before a line would take it past this size"`
	// RotateEvery rotates a non-empty file this long after it was opened
	// (default 24h; "0s" turns time rotation off).
	RotateEvery *Duration `yaml:"rotate_every" doc:"rotate a non-empty file this long after it was opened; 0s: never by time"`
	// Compress gzips rotated files.
	Compress bool `yaml:"compress" doc:"gzip rotated files"`
	// Retention of rotated files: at most MaxBackups (default 5; an
	// explicit 0: any number, which is why it is a pointer: unset and 0
	// differ), none older than MaxAge (0: any age), and rotated files plus
	// the active one never more than MaxTotalSizeMB (0: no limit).
	MaxBackups     *int     `yaml:"max_backups" doc:"rotated files kept at most (0: any number)"`
	MaxAge         Duration `yaml:"max_age" doc:"rotated files older than this are deleted (0s: any age)"`
	MaxTotalSizeMB int      `yaml:"max_total_size_mb" doc:"rotated files plus the active one never take more (0: no limit); at least max_size_mb, twice that with compress"`
	// Query logs the query string with the path.
	Query bool `yaml:"query" doc:"log the query string with the path"`
	// OnOverflow is what a full output queue does to a line: "drop" (the
	// default: the request is never slowed, the line is counted in
	// certgate_gateway_access_log_dropped_total and reported in the log)
	// or "block" (the request waits).
	OnOverflow string `yaml:"on_overflow" doc:"a full output queue: drop the line and count it (default; requests are never slowed by logging) or block the request"`
	// QueueLines is each output's in-memory queue (default 32768).
	QueueLines int `yaml:"queue_lines" doc:"each output's in-memory queue, in lines"`
	// TamperEvidence seals every rotated file with a hash chain and a
	// signed checkpoint (certgate accesslog verify checks them).
	TamperEvidence GatewayTamperEvidence `yaml:"tamper_evidence" doc:"hash chain and signed checkpoint per rotated file; certgate accesslog verify DIR checks them"`
	// Syslog ships every line to a collector (RFC 5424 over TCP or TLS).
	Syslog GatewaySyslog `yaml:"syslog" doc:"ship every line to a collector: RFC 5424, octet-counted, over TCP or TLS"`
}

// GatewayTamperEvidence turns tamper evidence on: Key set.
type GatewayTamperEvidence struct {
	// Key is the Ed25519 private key (PEM) that signs checkpoints.
	Key string `yaml:"key" doc:"Ed25519 private key (PEM, 0600) signing the checkpoints; empty: off"`
	// Name is the checkpoints' origin and key name.
	Name string `yaml:"name" doc:"the checkpoints' key name (default certgate-access-log)"`
}

// GatewaySyslog is the access log's collector.
type GatewaySyslog struct {
	// Address is host:port; empty: no syslog output.
	Address string `yaml:"address" doc:"collector host:port; empty: no syslog output" example:"logs.example.org:6514"`
	// TLS: set ca to speak TLS (the roots that verify the collector), and
	// cert and key to present a client certificate.
	TLS struct {
		CA   string `yaml:"ca" doc:"roots that verify the collector; set: TLS" example:"/etc/certgate/collector-ca.pem"`
		Cert string `yaml:"cert" doc:"client certificate chain shown to the collector (with key)"`
		Key  string `yaml:"key" doc:"its private key"`
	} `yaml:"tls" doc:"TLS to the collector"`
	// SpoolDir keeps lines on disk while the collector is away, at most
	// SpoolMaxMB (default 1024). Default: PATH.spool next to the access
	// log file; with path "-" there is no spool unless set.
	SpoolDir   string `yaml:"spool_dir" doc:"lines wait here on disk while the collector is away (default: the access log path + .spool)"`
	SpoolMaxMB int    `yaml:"spool_max_mb" doc:"the spool's size limit"`
	// Hostname and AppName fill the RFC 5424 header (defaults: the
	// machine's name, "certgate").
	Hostname string `yaml:"hostname" doc:"RFC 5424 HOSTNAME (default: the machine's name)"`
	AppName  string `yaml:"app_name" doc:"RFC 5424 APP-NAME (default certgate)"`
}

// Access log overflow policies.
const (
	OverflowDrop  = "drop"
	OverflowBlock = "block"
)

// GatewayPaths is the canonical-path policy (internal/gateway/canon
// documents the semantics). Every request path is canonicalized once,
// before any route decision, and the canonical path is what is forwarded;
// what cannot be made unambiguous is refused with 400.
type GatewayPaths struct {
	// RepeatedSlashes: "merge" (default) turns "//a" into "/a"; "reject"
	// refuses it.
	RepeatedSlashes string `yaml:"repeated_slashes" doc:"\"//a\": merge (to \"/a\", the default) or reject (400)"`
	// EscapedSlashes (%2F): "reject" (default), "decode" (read and
	// forward it as '/'), or "keep" (forward it encoded, for upstreams
	// that take it as data; routes still match it as '/').
	EscapedSlashes string `yaml:"escaped_slashes" doc:"%2F in a path: reject (default), decode (read and forward as /) or keep (forward encoded; routes match it as /)"`
	// Semicolons (path parameters, "/a;v=1"): "reject" (default) or
	// "allow" (forwarded; routes match each segment by its name without
	// parameters, as servlet containers read it).
	Semicolons string `yaml:"semicolons" doc:"path parameters (\"/a;v=1\"): reject (default) or allow (routes match each segment without its parameters)"`
}

// Path policy values.
const (
	PathsMerge  = "merge"
	PathsReject = "reject"
	PathsDecode = "decode"
	PathsKeep   = "keep"
	PathsAllow  = "allow"
)

// GatewayTimeouts bounds each phase of a connection.
type GatewayTimeouts struct {
	Handshake       Duration `yaml:"handshake" doc:"TLS handshake"`
	ReadHeader      Duration `yaml:"read_header" doc:"reading a request head"`
	Idle            Duration `yaml:"idle" doc:"an idle client connection is closed after this"`
	UpstreamDial    Duration `yaml:"upstream_dial" doc:"connecting to an upstream"`
	UpstreamHeader  Duration `yaml:"upstream_header" doc:"waiting for an upstream's response head"`
	UpstreamIdle    Duration `yaml:"upstream_idle" doc:"an idle pooled upstream connection is closed after this"`
	UpstreamMaxIdle int      `yaml:"upstream_max_idle" doc:"idle connections kept per upstream"`
}

// Route is an HTTP route: the first route whose host, path prefix and
// methods match a request decides it.
type Route struct {
	Name string `yaml:"name" doc:"unique name, in logs and metrics" example:"billing"`
	// Host matches the request host without port; empty matches any.
	Host string `yaml:"host" doc:"request host to match, without port; empty matches any"`
	// PathPrefix matches whole path segments: "/api" matches "/api" and
	// "/api/x" but not "/apix". Defaults to "/".
	PathPrefix string `yaml:"path_prefix" doc:"matches whole segments: /v1/invoices matches /v1/invoices and /v1/invoices/7, not /v1/invoicesx" example:"/v1/invoices"`
	// Methods lists the methods the route covers; empty covers all.
	Methods []string `yaml:"methods" doc:"methods the route covers; empty covers all" example:"[GET, POST]"`
	// Upstream is http://host:port or https://host:port, optionally with a
	// path prefix that replaces nothing (it is prepended).
	Upstream string `yaml:"upstream" doc:"http://host:port or https://host:port, optionally with a path prepended to the request path" example:"http://127.0.0.1:9000"`
	// UpstreamCA verifies an https upstream; defaults to system roots.
	UpstreamCA string `yaml:"upstream_ca" doc:"PEM roots that verify an https upstream (default: the system roots)"`
	// UpstreamServerName overrides the name checked in the upstream
	// certificate.
	UpstreamServerName string `yaml:"upstream_server_name" doc:"name checked in an https upstream's certificate (default: the upstream's host)"`
	// UpstreamClientCert presents the gateway's certificate to the upstream.
	UpstreamClientCert bool `yaml:"upstream_client_cert" doc:"present the gateway's own certificate to an https upstream"`
	// Allow lists exact SPIFFE IDs and patterns ending in "/*".
	Allow []string `yaml:"allow" doc:"identities let through: exact SPIFFE IDs, or patterns ending in /*" example:"[spiffe://example.org/svc/checkout, spiffe://example.org/team/finance/*]"`
	// RateLimit limits each identity's requests on the route.
	RateLimit RateLimit `yaml:"rate_limit" doc:"per-identity request rate on this route; over it: 429 with Retry-After (off while requests_per_second is 0)"`
	// Headers switches identity headers off and on (all on by default).
	Headers IdentityHeaders `yaml:"headers" doc:"identity headers sent to the upstream (copies sent by the client are always removed first); all on by default"`
	// LegacyKeys opts the route in to legacy static API keys.
	LegacyKeys RouteLegacyKeys `yaml:"legacy_keys" doc:"accept legacy static API keys (certgate legacy-key) from clients without a certificate, until a date; off unless header is set (docs/migrating-off-api-keys.md)"`
}

// RouteLegacyKeys is a route's legacy_keys: which header carries a key and
// until when the route accepts keys at all.
type RouteLegacyKeys struct {
	Header string `yaml:"header" doc:"the request header that carries the key: Authorization (Bearer KEY) or X-API-Key; removed before forwarding" example:"X-API-Key"`
	Until  string `yaml:"until" doc:"RFC 3339 time after which the route accepts no key (401 saying what to do); a key's own sunset may come sooner" example:"2027-03-01T00:00:00Z"`
	Link   string `yaml:"link" doc:"URL of the enrollment instructions, in the Link header of every key-authenticated response and in the 401 after the sunset" example:"https://wiki.example.org/certgate-enroll"`
}

// LegacyKeyHeaders are the headers a route may take legacy keys from.
var LegacyKeyHeaders = []string{"Authorization", "X-API-Key"}

// IdentityHeaders says which identity headers go to the upstream. A nil
// field means on.
type IdentityHeaders struct {
	ClientCert      *bool `yaml:"client_cert" doc:"RFC 9440 Client-Cert" example:"true"`
	ClientCertChain *bool `yaml:"client_cert_chain" doc:"RFC 9440 Client-Cert-Chain" example:"true"`
	XFCC            *bool `yaml:"xfcc" doc:"Envoy's X-Forwarded-Client-Cert" example:"true"`
	Identity        *bool `yaml:"identity" doc:"X-Client-Identity: the SPIFFE ID" example:"true"`
	Serial          *bool `yaml:"serial" doc:"X-Client-Cert-Serial" example:"true"`
}

// TCPRoute pipes bytes from its own mTLS listener to a TCP backend.
type TCPRoute struct {
	Name    string   `yaml:"name" doc:"unique name" example:"postgres"`
	Listen  string   `yaml:"listen" doc:"the route's own mTLS listener" example:"0.0.0.0:15432"`
	Backend string   `yaml:"backend" doc:"host:port the bytes go to" example:"127.0.0.1:5432"`
	Allow   []string `yaml:"allow" doc:"identities let through" example:"[spiffe://example.org/svc/reports]"`
}

// Duration is a time.Duration spelled as "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration such as "5s"; the error names the line.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: invalid duration %q (want e.g. \"5s\")", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// RateLimit is a route's rate_limit: a token bucket per identity.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requests_per_second" doc:"requests a second each identity may make on the route on average; 0: no limit" example:"10"`
	Burst             int     `yaml:"burst" doc:"requests an identity may make at once (default: requests_per_second rounded up)" example:"20"`
	// Overrides give some identities another limit; the first whose
	// identities match applies.
	Overrides []RateLimitOverride `yaml:"overrides" doc:"other limits for some identities; the first match applies"`
	// MaxIdentities bounds the buckets kept for the route.
	MaxIdentities int `yaml:"max_identities" doc:"buckets kept at most (memory is bounded however many identities call); a refilled bucket is forgotten first" example:"100000"`
}

// RateLimitOverride is one entry of rate_limit.overrides.
type RateLimitOverride struct {
	Identities        []string `yaml:"identities" doc:"exact SPIFFE IDs, or patterns ending in /*" example:"[spiffe://example.org/svc/batch/*]"`
	RequestsPerSecond float64  `yaml:"requests_per_second" doc:"their requests a second" example:"100"`
	Burst             int      `yaml:"burst" doc:"their burst (default: requests_per_second rounded up)" example:"200"`
}

// GatewayUsage is the usage section.
type GatewayUsage struct {
	// FlushInterval is how often the counts are sent to the server (5s);
	// a server's last seen lags a request by at most this (plus retries
	// while the server is away).
	FlushInterval Duration `yaml:"flush_interval" doc:"how often the counts go to the server; the server's last seen lags a request by at most this" example:"5s"`
	// MaxEntries bounds the distinct (identity, certificate, route, day)
	// counters kept between two reports (10000, at most 20000); requests
	// past it are counted as dropped and stay in the access log.
	MaxEntries int `yaml:"max_entries" doc:"distinct identity, certificate, route and day counters kept between two reports, 1..20000; requests past it are counted as dropped" example:"10000"`
	// Sharing reports a certificate used from more than MaxSources
	// distinct source hosts within Window.
	Sharing GatewaySharing `yaml:"sharing" doc:"report a certificate used from more source hosts at once than allowed (the server audits cert.sharing_suspected)"`
}

// GatewaySharing is usage.sharing.
type GatewaySharing struct {
	MaxSources int      `yaml:"max_sources" doc:"distinct source hosts one certificate may be used from within window, 1..32" example:"1"`
	Window     Duration `yaml:"window" doc:"the window of the sharing check" example:"1m"`
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Backups is the number of rotated files kept at most (0: any number):
// max_backups, or its default when the file does not set it.
func (a *GatewayAccessLog) Backups() int {
	if a.MaxBackups == nil {
		return DefaultAccessLogMaxBackups
	}
	return *a.MaxBackups
}

// Gateway defaults.
const (
	DefaultGatewayListen          = ":8443"
	DefaultRevocationRefresh      = 5 * time.Second
	DefaultMaxStaleness           = 5 * time.Minute
	DefaultFeedIdleTimeout        = 10 * time.Second
	DefaultFeedMaxBackoff         = 15 * time.Second
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultReadHeaderTimeout      = 10 * time.Second
	DefaultIdleTimeout            = 120 * time.Second
	DefaultUpstreamDialTimeout    = 5 * time.Second
	DefaultUpstreamHeaderTimout   = 30 * time.Second
	DefaultUpstreamIdleTimeout    = 90 * time.Second
	DefaultUpstreamMaxIdle        = 64
	DefaultMaxHeaderBytes         = 32 << 10
	DefaultAccessLogMaxSizeMB     = 100
	DefaultAccessLogMaxBackups    = 5
	DefaultUsageFlushInterval     = 5 * time.Second
	DefaultRateLimitMaxIdentities = 100000
	DefaultUsageMaxEntries        = 10000
	MaxUsageEntries               = 20000 // wire.MaxUsageEntries
	DefaultSharingMaxSources      = 1
	DefaultSharingWindow          = time.Minute
	DefaultAccessLogRotateEvery   = 24 * time.Hour
	DefaultAccessLogQueueLines    = 32768
	DefaultSyslogSpoolMaxMB       = 1024
)

// LoadGateway reads, decodes, defaults and validates a gateway config.
// Relative file paths in it are resolved against the config's directory.
func LoadGateway(path string) (*Gateway, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseGateway(path, data)
}

// ParseGateway is LoadGateway on bytes already read from name.
func ParseGateway(name string, data []byte) (*Gateway, error) {
	var g Gateway
	if err := DecodeStrict(name, data, &g); err != nil {
		return nil, err
	}
	g.setDefaults(filepath.Dir(name))
	if err := ValidateGateway(&g); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return &g, nil
}

func (g *Gateway) setDefaults(dir string) {
	abs := func(p *string) {
		if *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&g.Identity.Dir)
	abs(&g.Identity.TokenFile)
	if g.Bundle == "" && g.Identity.Dir != "" {
		g.Bundle = filepath.Join(g.Identity.Dir, "bundle.pem")
	}
	abs(&g.Bundle)
	abs(&g.Cert)
	abs(&g.Key)
	abs(&g.Server.CA)
	abs(&g.AccessLog.Path)
	abs(&g.AccessLog.Syslog.TLS.CA)
	abs(&g.AccessLog.Syslog.TLS.Cert)
	abs(&g.AccessLog.Syslog.TLS.Key)
	abs(&g.AccessLog.Syslog.SpoolDir)
	abs(&g.AccessLog.TamperEvidence.Key)
	if g.AccessLog.TamperEvidence.Key != "" && g.AccessLog.TamperEvidence.Name == "" {
		g.AccessLog.TamperEvidence.Name = "certgate-access-log"
	}
	for i := range g.Routes {
		abs(&g.Routes[i].UpstreamCA)
		if g.Routes[i].PathPrefix == "" {
			g.Routes[i].PathPrefix = "/"
		}
		g.Routes[i].Host = strings.ToLower(g.Routes[i].Host)
		for j, m := range g.Routes[i].Methods {
			g.Routes[i].Methods[j] = strings.ToUpper(m)
		}
	}
	if g.Listen == "" {
		g.Listen = DefaultGatewayListen
	}
	if g.Server.CA == "" {
		g.Server.CA = g.Bundle
	}
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&g.Server.RevocationRefresh, DefaultRevocationRefresh)
	if g.Revocation.Mode == "" && len(g.ServerURLs()) > 0 {
		g.Revocation.Mode = RevocationFeed
	}
	def(&g.Revocation.MaxStaleness, DefaultMaxStaleness)
	def(&g.Revocation.IdleTimeout, DefaultFeedIdleTimeout)
	def(&g.Revocation.MaxBackoff, DefaultFeedMaxBackoff)
	for i := range g.Routes {
		rl := &g.Routes[i].RateLimit
		if rl.RequestsPerSecond > 0 && rl.Burst == 0 {
			rl.Burst = int(math.Ceil(rl.RequestsPerSecond))
		}
		if rl.MaxIdentities == 0 {
			rl.MaxIdentities = DefaultRateLimitMaxIdentities
		}
		for j := range rl.Overrides {
			if o := &rl.Overrides[j]; o.RequestsPerSecond > 0 && o.Burst == 0 {
				o.Burst = int(math.Ceil(o.RequestsPerSecond))
			}
		}
	}
	def(&g.Usage.FlushInterval, DefaultUsageFlushInterval)
	def(&g.Usage.Sharing.Window, DefaultSharingWindow)
	if g.Usage.MaxEntries == 0 {
		g.Usage.MaxEntries = DefaultUsageMaxEntries
	}
	if g.Usage.Sharing.MaxSources == 0 {
		g.Usage.Sharing.MaxSources = DefaultSharingMaxSources
	}
	def(&g.Timeouts.Handshake, DefaultHandshakeTimeout)
	def(&g.Timeouts.ReadHeader, DefaultReadHeaderTimeout)
	def(&g.Timeouts.Idle, DefaultIdleTimeout)
	def(&g.Timeouts.UpstreamDial, DefaultUpstreamDialTimeout)
	def(&g.Timeouts.UpstreamHeader, DefaultUpstreamHeaderTimout)
	def(&g.Timeouts.UpstreamIdle, DefaultUpstreamIdleTimeout)
	if g.Timeouts.UpstreamMaxIdle == 0 {
		g.Timeouts.UpstreamMaxIdle = DefaultUpstreamMaxIdle
	}
	if g.MaxHeaderBytes == 0 {
		g.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if g.Paths.RepeatedSlashes == "" {
		g.Paths.RepeatedSlashes = PathsMerge
	}
	if g.Paths.EscapedSlashes == "" {
		g.Paths.EscapedSlashes = PathsReject
	}
	if g.Paths.Semicolons == "" {
		g.Paths.Semicolons = PathsReject
	}
	if g.AccessLog.Path == "" {
		g.AccessLog.Path = "-"
	}
	if g.AccessLog.MaxSizeMB == 0 {
		g.AccessLog.MaxSizeMB = DefaultAccessLogMaxSizeMB
	}
	if g.AccessLog.MaxBackups == nil {
		n := DefaultAccessLogMaxBackups
		g.AccessLog.MaxBackups = &n
	}
	if g.AccessLog.RotateEvery == nil {
		d := Duration(DefaultAccessLogRotateEvery)
		g.AccessLog.RotateEvery = &d
	}
	if g.AccessLog.OnOverflow == "" {
		g.AccessLog.OnOverflow = OverflowDrop
	}
	if g.AccessLog.QueueLines == 0 {
		g.AccessLog.QueueLines = DefaultAccessLogQueueLines
	}
	if sl := &g.AccessLog.Syslog; sl.Address != "" {
		if sl.SpoolMaxMB == 0 {
			sl.SpoolMaxMB = DefaultSyslogSpoolMaxMB
		}
		if sl.SpoolDir == "" && g.AccessLog.Path != "-" {
			sl.SpoolDir = g.AccessLog.Path + ".spool"
		}
	}
}

// ValidateGateway checks a defaulted config; every error names the field.
// It does not read the files the config names.
func ValidateGateway(g *Gateway) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := identity.ValidateTrustDomain(g.TrustDomain); err != nil {
		bad("trust_domain", "%v", err)
	}
	if g.Bundle == "" {
		bad("bundle", "is required")
	}
	validateIdentity(bad, g)
	if _, _, err := net.SplitHostPort(g.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if g.Server.URL != "" {
		if u, err := url.Parse(g.Server.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("server.url", "must be an https:// URL, got %q", g.Server.URL)
		}
	}
	for i, s := range g.Server.URLs {
		if u, err := url.Parse(s); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(fmt.Sprintf("server.urls[%d]", i), "must be an https:// URL, got %q", s)
		}
	}
	switch g.Revocation.Mode {
	case "":
	case RevocationFeed, RevocationPull:
		if len(g.ServerURLs()) == 0 {
			bad("revocation.mode", "%q needs server.url or server.urls", g.Revocation.Mode)
		}
	default:
		bad("revocation.mode", "must be %q or %q, got %q", RevocationFeed, RevocationPull, g.Revocation.Mode)
	}
	if g.Revocation.MaxStaleness < Duration(time.Second) {
		bad("revocation.max_staleness", "must be at least 1s, got %s", g.Revocation.MaxStaleness.Std())
	}
	if g.Usage.FlushInterval < Duration(100*time.Millisecond) {
		bad("usage.flush_interval", "must be at least 100ms, got %s", g.Usage.FlushInterval.Std())
	}
	if g.Usage.MaxEntries < 1 || g.Usage.MaxEntries > MaxUsageEntries {
		bad("usage.max_entries", "must be between 1 and %d, got %d", MaxUsageEntries, g.Usage.MaxEntries)
	}
	if g.Usage.Sharing.MaxSources < 1 || g.Usage.Sharing.MaxSources > 32 {
		bad("usage.sharing.max_sources", "must be between 1 and 32, got %d", g.Usage.Sharing.MaxSources)
	}
	if g.Usage.Sharing.Window < Duration(time.Second) {
		bad("usage.sharing.window", "must be at least 1s, got %s", g.Usage.Sharing.Window.Std())
	}
	if g.Revocation.IdleTimeout < Duration(100*time.Millisecond) {
		bad("revocation.idle_timeout", "must be at least 100ms, got %s", g.Revocation.IdleTimeout.Std())
	}
	if g.Revocation.MaxBackoff < Duration(100*time.Millisecond) {
		bad("revocation.max_backoff", "must be at least 100ms, got %s", g.Revocation.MaxBackoff.Std())
	}
	if g.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(g.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{
		{"server.revocation_refresh", g.Server.RevocationRefresh}, {"timeouts.handshake", g.Timeouts.Handshake},
		{"timeouts.read_header", g.Timeouts.ReadHeader}, {"timeouts.idle", g.Timeouts.Idle},
		{"timeouts.upstream_dial", g.Timeouts.UpstreamDial}, {"timeouts.upstream_header", g.Timeouts.UpstreamHeader},
		{"timeouts.upstream_idle", g.Timeouts.UpstreamIdle},
	} {
		if f.d < 0 {
			bad(f.name, "must not be negative")
		}
	}
	if g.MaxHeaderBytes < 1024 || g.MaxHeaderBytes > 1<<20 {
		bad("max_header_bytes", "must be between 1024 and 1048576, got %d", g.MaxHeaderBytes)
	}
	validateAccessLog(bad, &g.AccessLog)
	for _, f := range []struct {
		name, v string
		ok      []string
	}{
		{"paths.repeated_slashes", g.Paths.RepeatedSlashes, []string{PathsMerge, PathsReject}},
		{"paths.escaped_slashes", g.Paths.EscapedSlashes, []string{PathsReject, PathsDecode, PathsKeep}},
		{"paths.semicolons", g.Paths.Semicolons, []string{PathsReject, PathsAllow}},
	} {
		if !slices.Contains(f.ok, f.v) {
			bad(f.name, "must be one of %q, got %q", f.ok, f.v)
		}
	}
	if len(g.Routes) == 0 && len(g.TCPRoutes) == 0 {
		bad("routes", "at least one route or tcp_route is required")
	}
	names := map[string]bool{}
	for i, r := range g.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			bad(f+".name", "is required")
		} else if names[r.Name] {
			bad(f+".name", "duplicate route name %q", r.Name)
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.PathPrefix, "/") {
			bad(f+".path_prefix", "must start with '/', got %q", r.PathPrefix)
		}
		if strings.ContainsAny(r.Host, "/: ") {
			bad(f+".host", "must be a host name without port, got %q", r.Host)
		}
		for _, m := range r.Methods {
			if m == "" || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
				bad(f+".methods", "invalid method %q", m)
			}
		}
		u, err := url.Parse(r.Upstream)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad(f+".upstream", "must be an http:// or https:// URL, got %q", r.Upstream)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			bad(f+".upstream", "must not have a query, fragment or user info, got %q", r.Upstream)
		case u.Scheme == "http" && (r.UpstreamCA != "" || r.UpstreamClientCert || r.UpstreamServerName != ""):
			bad(f+".upstream", "upstream_ca, upstream_server_name and upstream_client_cert need an https:// upstream")
		}
		validateAllow(bad, f+".allow", g.TrustDomain, r.Allow)
		validateRateLimit(bad, f+".rate_limit", g.TrustDomain, r.RateLimit)
		validateLegacyKeys(bad, f+".legacy_keys", r.LegacyKeys)
	}
	for i, r := range g.TCPRoutes {
		f := fmt.Sprintf("tcp_routes[%d]", i)
		if r.Name == "" {
			bad(f+".name", "is required")
		} else if names[r.Name] {
			bad(f+".name", "duplicate route name %q", r.Name)
		}
		names[r.Name] = true
		if _, _, err := net.SplitHostPort(r.Listen); err != nil {
			bad(f+".listen", "%v", err)
		}
		if _, _, err := net.SplitHostPort(r.Backend); err != nil {
			bad(f+".backend", "%v", err)
		}
		validateAllow(bad, f+".allow", g.TrustDomain, r.Allow)
	}
	return errors.Join(errs...)
}

func validateLegacyKeys(bad func(field, format string, args ...any), f string, lk RouteLegacyKeys) {
	if lk == (RouteLegacyKeys{}) {
		return
	}
	if !slices.Contains(LegacyKeyHeaders, lk.Header) {
		bad(f+".header", "must be one of %q, got %q", LegacyKeyHeaders, lk.Header)
	}
	if _, err := time.Parse(time.RFC3339, lk.Until); err != nil {
		bad(f+".until", "must be an RFC 3339 time such as 2027-03-01T00:00:00Z, got %q", lk.Until)
	}
	if lk.Link != "" {
		if u, err := url.Parse(lk.Link); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(lk.Link, "<>\" \r\n") {
			bad(f+".link", "must be an http:// or https:// URL, got %q", lk.Link)
		}
	}
}

// validateIdentity checks that the gateway's certificate comes from exactly
// one place: cert and key files, or identity.dir.
func validateIdentity(bad func(field, format string, args ...any), g *Gateway) {
	id := g.Identity
	if id.Dir == "" {
		for _, f := range []struct{ name, v string }{{"cert", g.Cert}, {"key", g.Key}} {
			if f.v == "" {
				bad(f.name, "is required")
			}
		}
		if len(id.Hosts) > 0 || id.TokenFile != "" || id.KeyType != "" || id.KeyStore != "" {
			bad("identity.dir", "is required with identity.hosts, identity.token_file, identity.key_type or identity.key_store")
		}
		return
	}
	for _, f := range []struct{ name, v string }{{"cert", g.Cert}, {"key", g.Key}} {
		if f.v != "" {
			bad(f.name, "must not be set with identity.dir (the gateway's certificate is kept there)")
		}
	}
	if id.KeyType != "" {
		if _, err := keytype.Parse(id.KeyType); err != nil {
			bad("identity.key_type", "%v", err)
		}
	}
	if id.KeyStore != "" && !strings.HasPrefix(id.KeyStore, "pkcs11:") && !strings.HasPrefix(id.KeyStore, "tpm:") {
		bad("identity.key_store", "%q is neither a pkcs11: nor a tpm: URI", id.KeyStore)
	}
	if len(id.Hosts) == 0 {
		bad("identity.hosts", "at least one DNS name or IP address is required")
	}
	if len(id.Hosts) > MaxGatewayHosts {
		bad("identity.hosts", "at most %d names, got %d", MaxGatewayHosts, len(id.Hosts))
		return
	}
	seen := map[string]bool{}
	for i, h := range id.Hosts {
		f := fmt.Sprintf("identity.hosts[%d]", i)
		if seen[strings.ToLower(h)] {
			bad(f, "duplicate host %q", h)
		}
		seen[strings.ToLower(h)] = true
		if net.ParseIP(h) != nil {
			continue
		}
		if err := checkHostName(h); err != nil {
			bad(f, "%q is neither an IP address nor a DNS name: %v", h, err)
		}
	}
}

// checkHostName accepts a plain DNS name: letters, digits, '-' and '.',
// labels of 1 to 63 bytes, at most 253 bytes, no wildcard (the CA issues
// no wildcard names).
func checkHostName(h string) error {
	if h == "" || len(h) > 253 {
		return errors.New("empty or longer than 253 bytes")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty label or label longer than 63 bytes")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

func validateRateLimit(bad func(field, format string, args ...any), f, td string, rl RateLimit) {
	if rl.RequestsPerSecond == 0 && rl.Burst == 0 && len(rl.Overrides) == 0 {
		return
	}
	if !(rl.RequestsPerSecond > 0) || rl.RequestsPerSecond > 1e9 {
		bad(f+".requests_per_second", "must be above 0 and at most 1e9 when rate_limit is set, got %v", rl.RequestsPerSecond)
	}
	if rl.RequestsPerSecond > 0 && (rl.Burst < 1 || rl.Burst > 1e9) {
		bad(f+".burst", "must be between 1 and 1e9, got %d", rl.Burst)
	}
	if rl.MaxIdentities < 64 || rl.MaxIdentities > 10_000_000 {
		bad(f+".max_identities", "must be between 64 and 10000000, got %d", rl.MaxIdentities)
	}
	for i, o := range rl.Overrides {
		of := fmt.Sprintf("%s.overrides[%d]", f, i)
		if len(o.Identities) == 0 {
			bad(of+".identities", "is required")
		}
		validateAllow(bad, of+".identities", td, o.Identities)
		if !(o.RequestsPerSecond > 0) || o.RequestsPerSecond > 1e9 {
			bad(of+".requests_per_second", "must be above 0 and at most 1e9, got %v", o.RequestsPerSecond)
		}
		if o.RequestsPerSecond > 0 && (o.Burst < 1 || o.Burst > 1e9) {
			bad(of+".burst", "must be between 1 and 1e9, got %d", o.Burst)
		}
	}
}

func validateAllow(bad func(field, format string, args ...any), field, td string, allow []string) {
	for j, a := range allow {
		f := fmt.Sprintf("%s[%d]", field, j)
		id := a
		if p, ok := strings.CutSuffix(a, "/*"); ok {
			id = p
		}
		parsed, err := identity.Parse(id)
		if err != nil {
			bad(f, "%v", err)
			continue
		}
		if td != "" && !parsed.MemberOf(td) {
			bad(f, "%q is outside the trust domain %q", a, td)
		}
	}
}

// ServerURLs returns the configured server URLs, server.url first, without
// duplicates.
func (g *Gateway) ServerURLs() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range append([]string{g.Server.URL}, g.Server.URLs...) {
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// HeaderOn reports whether an identity header switch is on (nil means on).
func HeaderOn(b *bool) bool { return b == nil || *b }

func validateAccessLog(bad func(field, format string, args ...any), a *GatewayAccessLog) {
	if a.MaxSizeMB < 0 || a.Backups() < 0 || a.MaxTotalSizeMB < 0 || a.MaxAge < 0 || (a.RotateEvery != nil && *a.RotateEvery < 0) {
		bad("access_log", "max_size_mb, max_backups, max_total_size_mb, max_age and rotate_every must not be negative")
	}
	// The active file grows to max_size_mb while a rotated one is being
	// compressed next to its copy: the total must leave room for both.
	if need := a.MaxSizeMB * map[bool]int{false: 1, true: 2}[a.Compress]; a.MaxTotalSizeMB > 0 && a.MaxTotalSizeMB < need {
		bad("access_log.max_total_size_mb", "must be at least %d (max_size_mb, twice with compress), got %d", need, a.MaxTotalSizeMB)
	}
	if a.Path == "-" && (a.Compress || a.MaxTotalSizeMB > 0 || a.MaxAge > 0) {
		bad("access_log", "compress, max_total_size_mb and max_age need a file path")
	}
	if a.OnOverflow != OverflowDrop && a.OnOverflow != OverflowBlock {
		bad("access_log.on_overflow", "must be %q or %q, got %q", OverflowDrop, OverflowBlock, a.OnOverflow)
	}
	if a.QueueLines < 16 || a.QueueLines > 1<<22 {
		bad("access_log.queue_lines", "must be between 16 and 4194304, got %d", a.QueueLines)
	}
	if te := a.TamperEvidence; te.Key != "" && a.Path == "-" {
		bad("access_log.tamper_evidence", "needs a file path")
	} else if te.Key == "" && te.Name != "" {
		bad("access_log.tamper_evidence.key", "is required with name")
	} else if strings.ContainsAny(te.Name, " +\t\n") {
		bad("access_log.tamper_evidence.name", "must have no spaces or '+', got %q", te.Name)
	}
	sl := &a.Syslog
	if sl.Address == "" {
		if sl.TLS.CA != "" || sl.TLS.Cert != "" || sl.TLS.Key != "" || sl.SpoolDir != "" {
			bad("access_log.syslog.address", "is required with the other syslog settings")
		}
		return
	}
	if _, port, err := net.SplitHostPort(sl.Address); err != nil || port == "" {
		bad("access_log.syslog.address", "must be host:port, got %q", sl.Address)
	}
	if (sl.TLS.Cert == "") != (sl.TLS.Key == "") {
		bad("access_log.syslog.tls", "cert and key go together")
	}
	if sl.TLS.Cert != "" && sl.TLS.CA == "" {
		bad("access_log.syslog.tls.ca", "is required with a client certificate (it turns TLS on)")
	}
	if sl.SpoolMaxMB < 0 {
		bad("access_log.syslog.spool_max_mb", "must not be negative")
	}
	if sl.Hostname != "" && len(sl.Hostname) > 255 || strings.ContainsFunc(sl.Hostname, func(r rune) bool { return r < 33 || r > 126 }) {
		bad("access_log.syslog.hostname", "must be printable US-ASCII without spaces, at most 255 bytes")
	}
	if len(sl.AppName) > 48 || strings.ContainsFunc(sl.AppName, func(r rune) bool { return r < 33 || r > 126 }) {
		bad("access_log.syslog.app_name", "must be printable US-ASCII without spaces, at most 48 bytes")
	}
}

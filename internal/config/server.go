package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

// FileName is the name of the CA/server config inside a certgate directory.
const FileName = "certgate.yaml"

// Server is certgate.yaml: the CA, its store and the control-plane server.
// Relative paths are relative to the directory holding the file.
type Server struct {
	TrustDomain string   `yaml:"trust_domain"`
	Store       string   `yaml:"store"`
	CA          CA       `yaml:"ca"`
	Profiles    Profiles `yaml:"profiles"`
	Listen      Listen   `yaml:"server"`
	Tokens      Tokens   `yaml:"tokens"`
	Admin       Admin    `yaml:"admin"`
	Revocation  Revoke   `yaml:"revocation"`
	Log         Log      `yaml:"log"`
	EST         EST      `yaml:"est"`
	Audit       Audit    `yaml:"audit"`

	dir string // where the file was loaded from
}

// CA names the CA files.
type CA struct {
	KeyType          string `yaml:"key_type"`
	RootCert         string `yaml:"root_cert"`
	RootKey          string `yaml:"root_key"`
	IntermediateCert string `yaml:"intermediate_cert"`
	IntermediateKey  string `yaml:"intermediate_key"`
	Bundle           string `yaml:"bundle"`
	// Rotation is when the CA rotates by itself (package calife).
	Rotation Rotation `yaml:"rotation"`
}

// Rotation configures the CA's rotations.
type Rotation struct {
	// Auto starts a rotation of the intermediate at At of its life.
	Auto bool    `yaml:"auto"`
	At   float64 `yaml:"at"`
	// PublishAhead is how long a new intermediate is published before it
	// signs, when no time is given.
	PublishAhead         time.Duration `yaml:"publish_ahead"`
	IntermediateLifetime time.Duration `yaml:"intermediate_lifetime"`
	RootLifetime         time.Duration `yaml:"root_lifetime"`
	// WarnBefore: "certgate ca status" and the server warn about CAs that
	// expire sooner.
	WarnBefore time.Duration `yaml:"warn_before"`
	// CheckInterval is how often the server looks whether a rotation step
	// is due.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// Profiles sets certificate lifetimes.
type Profiles struct {
	ClientLifetime time.Duration `yaml:"client_lifetime"`
	ServerLifetime time.Duration `yaml:"server_lifetime"`
}

// Listen configures the HTTPS server.
type Listen struct {
	Listen            string        `yaml:"listen"`
	URL               string        `yaml:"url"`
	Hostnames         []string      `yaml:"hostnames"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// StatusListen, when set, is a second, plain-HTTP listener serving only
	// the CRL and OCSP (both signed, so HTTP is safe, and verifiers that
	// fetch them need no TLS first). Empty: off.
	StatusListen string `yaml:"status_listen"`
	// StatusURL is the base of the CRL and OCSP URLs written into every
	// certificate; empty means URL. Defaults to http://STATUS_LISTEN when
	// StatusListen is set.
	StatusURL string `yaml:"status_url"`
	// MetricsListen, when set, serves Prometheus metrics (/metrics) of the
	// server, among them certgate_ca_expiry_timestamp_seconds. Empty: off.
	MetricsListen string `yaml:"metrics_listen"`
}

// Log configures the server's log (JSON lines on stderr).
type Log struct {
	// Level is the least severe level written: debug, info, warn or
	// error. A SIGHUP applies a change.
	Level string `yaml:"level"`
}

// LogLevels are the values of log.level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Tokens configures enrollment tokens.
type Tokens struct {
	DefaultTTL time.Duration `yaml:"default_ttl"`
	MaxTTL     time.Duration `yaml:"max_ttl"`
	// MaxPrivilegedTTL is the longest a token for an identity that holds
	// a role (admin, auditor, gateway, issuer) may live: such a token is
	// worth more to a thief, so it is kept short.
	MaxPrivilegedTTL time.Duration `yaml:"max_privileged_ttl"`
}

// Revoke tunes how revocation is published: the change feed, the CRL and
// the OCSP responder.
type Revoke struct {
	FeedHeartbeat      time.Duration `yaml:"feed_heartbeat"`
	CRLValidity        time.Duration `yaml:"crl_validity"`
	OCSPValidity       time.Duration `yaml:"ocsp_validity"`
	OCSPSignerLifetime time.Duration `yaml:"ocsp_signer_lifetime"`
}

// EST configures enrollment over RFC 7030 (/.well-known/est/ on the
// server's listener). Token enrollment (the token as the HTTP Basic
// password) and re-enrollment are always on; Bootstrap adds the CAs whose
// device certificates may enroll without a token.
type EST struct {
	Bootstrap []ESTBootstrap `yaml:"bootstrap"`
}

// ESTBootstrap is one CA of bootstrap certificates (e.g. a manufacturer's
// device identities): a device holding one enrolls as
// spiffe://TRUST_DOMAIN + IdentityPrefix + its certificate's subject
// serial number (or common name).
type ESTBootstrap struct {
	Name           string `yaml:"name"`
	Bundle         string `yaml:"bundle"`
	IdentityPrefix string `yaml:"identity_prefix"`
}

// Audit configures the audit log's signed checkpoints (package auditsign):
// the key that signs them, kept like the CA keys (encrypted with the
// passphrase, in the directory, never in the store), the file they are
// appended to, and how often one is signed.
type Audit struct {
	// Key is the Ed25519 audit key, encrypted PKCS#8; made by init, or by
	// the first server start of an installation made before.
	Key string `yaml:"key"`
	// PublicKey is its public half (PEM PUBLIC KEY), for verifiers.
	PublicKey string `yaml:"public_key"`
	// Name is the checkpoints' origin and key name; "" is
	// TRUST_DOMAIN/certgate/audit.
	Name string `yaml:"name"`
	// Checkpoints is the file every signed checkpoint is appended to.
	Checkpoints string `yaml:"checkpoints"`
	// CheckpointEvery: a checkpoint at least every this many records.
	CheckpointEvery int64 `yaml:"checkpoint_every"`
	// CheckpointInterval: a checkpoint of the head at least this often
	// when the log grew.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// CheckpointName is the checkpoints' origin (audit.name or its default).
func (c *Server) CheckpointName() string {
	if c.Audit.Name != "" {
		return c.Audit.Name
	}
	return c.TrustDomain + "/certgate/audit"
}

// Admin names the admin client certificate the CLI uses.
type Admin struct {
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
	Bundle string `yaml:"bundle"`
}

// DefaultServer returns the defaults for trust domain td. The listen
// address is loopback: exposing the CA is a deliberate act.
func DefaultServer(td string) Server {
	return Server{
		TrustDomain: td,
		Store:       "sqlite://certgate.db",
		EST:         EST{Bootstrap: []ESTBootstrap{}},
		CA: CA{
			KeyType:          string(keytype.Default),
			RootCert:         "ca/root.pem",
			RootKey:          "ca/root.key",
			IntermediateCert: "ca/intermediate.pem",
			IntermediateKey:  "ca/intermediate.key",
			Bundle:           "bundle.pem",
			Rotation: Rotation{Auto: true, At: 2.0 / 3, PublishAhead: 24 * time.Hour, IntermediateLifetime: 365 * 24 * time.Hour,
				RootLifetime: 10 * 365 * 24 * time.Hour, WarnBefore: 30 * 24 * time.Hour, CheckInterval: time.Minute},
		},
		Profiles: Profiles{ClientLifetime: 24 * time.Hour, ServerLifetime: 7 * 24 * time.Hour},
		Listen: Listen{
			Listen:            "127.0.0.1:8444",
			URL:               "https://127.0.0.1:8444",
			Hostnames:         []string{"localhost", "127.0.0.1", "::1"},
			MaxBodyBytes:      64 << 10,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
		Tokens: Tokens{DefaultTTL: 15 * time.Minute, MaxTTL: 24 * time.Hour, MaxPrivilegedTTL: time.Hour},
		Log:    Log{Level: "info"},
		Admin:  Admin{Cert: "admin/cert.pem", Key: "admin/key.pem", Bundle: "admin/bundle.pem"},
		Audit: Audit{Key: "ca/audit.key", PublicKey: "ca/audit.pub.pem", Checkpoints: "audit-checkpoints",
			CheckpointEvery: 1000, CheckpointInterval: time.Minute},
		Revocation: Revoke{
			FeedHeartbeat: 2 * time.Second, CRLValidity: time.Hour, OCSPValidity: time.Hour, OCSPSignerLifetime: 24 * time.Hour,
		},
	}
}

// LoadServer reads, strictly decodes and validates DIR/certgate.yaml.
// Fields missing from the file take their defaults.
func LoadServer(dir string) (*Server, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseServer(path, data)
}

// ParseServer decodes and validates a server config; path locates relative
// file names.
func ParseServer(path string, data []byte) (*Server, error) {
	c := DefaultServer("")
	if err := DecodeStrict(path, data, &c); err != nil {
		return nil, err
	}
	if c.Listen.StatusListen != "" && c.Listen.StatusURL == "" {
		c.Listen.StatusURL = "http://" + c.Listen.StatusListen
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.dir = abs
	return &c, nil
}

// Validate checks c without changing it and reports every problem, each
// naming its field.
func (c Server) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if err := identity.ValidateTrustDomain(c.TrustDomain); err != nil {
		bad("trust_domain", "%v", err)
	}
	if c.Store == "" {
		bad("store", "is empty")
	}
	if _, err := keytype.Parse(c.CA.KeyType); err != nil {
		bad("ca.key_type", "%v", err)
	}
	for field, v := range map[string]string{
		"ca.root_cert": c.CA.RootCert, "ca.intermediate_cert": c.CA.IntermediateCert,
		"ca.intermediate_key": c.CA.IntermediateKey, "ca.bundle": c.CA.Bundle,
		"admin.cert": c.Admin.Cert, "admin.key": c.Admin.Key, "admin.bundle": c.Admin.Bundle,
		"audit.key": c.Audit.Key, "audit.public_key": c.Audit.PublicKey, "audit.checkpoints": c.Audit.Checkpoints,
	} {
		if v == "" {
			bad(field, "is empty")
		}
	}
	if r := c.CA.Rotation; r.At <= 0 || r.At >= 1 {
		bad("ca.rotation.at", "%v is not a fraction between 0 and 1", r.At)
	}
	for field, d := range map[string]time.Duration{
		"ca.rotation.publish_ahead": c.CA.Rotation.PublishAhead, "ca.rotation.warn_before": c.CA.Rotation.WarnBefore,
	} {
		if d <= 0 {
			bad(field, "must be positive")
		}
	}
	if c.CA.Rotation.IntermediateLifetime < time.Hour {
		bad("ca.rotation.intermediate_lifetime", "%s is shorter than 1h", c.CA.Rotation.IntermediateLifetime)
	}
	if c.CA.Rotation.RootLifetime < c.CA.Rotation.IntermediateLifetime {
		bad("ca.rotation.root_lifetime", "%s is shorter than the intermediate lifetime", c.CA.Rotation.RootLifetime)
	}
	if c.CA.Rotation.CheckInterval < time.Second {
		bad("ca.rotation.check_interval", "%s is shorter than 1s", c.CA.Rotation.CheckInterval)
	}
	if c.Listen.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.Listen.MetricsListen); err != nil {
			bad("server.metrics_listen", "%v", err)
		}
	}
	if !slices.Contains(LogLevels, c.Log.Level) {
		bad("log.level", "%q is not one of %s", c.Log.Level, strings.Join(LogLevels, ", "))
	}
	if c.Profiles.ClientLifetime < time.Minute {
		bad("profiles.client_lifetime", "%s is shorter than 1m", c.Profiles.ClientLifetime)
	}
	if c.Profiles.ServerLifetime < time.Minute {
		bad("profiles.server_lifetime", "%s is shorter than 1m", c.Profiles.ServerLifetime)
	}
	if _, _, err := net.SplitHostPort(c.Listen.Listen); err != nil {
		bad("server.listen", "%v", err)
	}
	if u, err := url.Parse(c.Listen.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("server.url", "%q is not an https:// URL", c.Listen.URL)
	}
	if c.Listen.StatusListen != "" {
		if _, _, err := net.SplitHostPort(c.Listen.StatusListen); err != nil {
			bad("server.status_listen", "%v", err)
		}
	}
	if c.Listen.StatusURL != "" {
		if u, err := url.Parse(c.Listen.StatusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("server.status_url", "%q is not an http:// or https:// URL", c.Listen.StatusURL)
		}
	}
	if c.Listen.MaxBodyBytes < 1024 || c.Listen.MaxBodyBytes > 16<<20 {
		bad("server.max_body_bytes", "%d is outside 1024..16777216", c.Listen.MaxBodyBytes)
	}
	for field, d := range map[string]time.Duration{
		"server.read_header_timeout": c.Listen.ReadHeaderTimeout, "server.read_timeout": c.Listen.ReadTimeout,
		"server.idle_timeout": c.Listen.IdleTimeout,
	} {
		if d <= 0 {
			bad(field, "must be positive")
		}
	}
	if c.Revocation.FeedHeartbeat < 100*time.Millisecond || c.Revocation.FeedHeartbeat > time.Minute {
		bad("revocation.feed_heartbeat", "%s is outside 100ms..1m", c.Revocation.FeedHeartbeat)
	}
	if c.Revocation.CRLValidity < time.Minute {
		bad("revocation.crl_validity", "%s is shorter than 1m", c.Revocation.CRLValidity)
	}
	if c.Revocation.OCSPValidity < time.Minute {
		bad("revocation.ocsp_validity", "%s is shorter than 1m", c.Revocation.OCSPValidity)
	}
	if c.Revocation.OCSPSignerLifetime < c.Revocation.OCSPValidity {
		bad("revocation.ocsp_signer_lifetime", "%s is shorter than ocsp_validity", c.Revocation.OCSPSignerLifetime)
	}
	names := map[string]bool{}
	for i, b := range c.EST.Bootstrap {
		field := fmt.Sprintf("est.bootstrap[%d]", i)
		if b.Name == "" || names[b.Name] {
			bad(field+".name", "%q is empty or not unique", b.Name)
		}
		names[b.Name] = true
		if b.Bundle == "" {
			bad(field+".bundle", "is empty")
		}
		p := b.IdentityPrefix
		switch {
		case len(p) < 3 || !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/"):
			bad(field+".identity_prefix", "%q is not a path like /device/", p)
		case strings.HasPrefix(p, identity.AdminPrefix) || strings.HasPrefix(p, identity.GatewayPrefix) || p == "/server/":
			bad(field+".identity_prefix", "%q is a role's prefix; a bootstrap certificate grants no role", p)
		}
	}
	if c.Audit.CheckpointEvery < 1 {
		bad("audit.checkpoint_every", "%d is not a positive number of records", c.Audit.CheckpointEvery)
	}
	if c.Audit.CheckpointInterval < time.Second {
		bad("audit.checkpoint_interval", "%s is shorter than 1s", c.Audit.CheckpointInterval)
	}
	if c.Audit.Name != "" && (strings.ContainsAny(c.Audit.Name, " +\t\n") || !utf8.ValidString(c.Audit.Name)) {
		bad("audit.name", "%q has a space, '+' or is not UTF-8", c.Audit.Name)
	}
	if c.Tokens.DefaultTTL <= 0 || c.Tokens.MaxTTL < c.Tokens.DefaultTTL {
		bad("tokens", "default_ttl must be positive and not above max_ttl")
	}
	if c.Tokens.MaxPrivilegedTTL <= 0 || c.Tokens.MaxPrivilegedTTL > c.Tokens.MaxTTL {
		bad("tokens.max_privileged_ttl", "%s must be positive and not above max_ttl", c.Tokens.MaxPrivilegedTTL)
	}
	return sortedJoin(errs)
}

// sortedJoin joins errors in a stable order (map iteration is random).
func sortedJoin(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	for i := 1; i < len(msgs); i++ {
		for j := i; j > 0 && msgs[j] < msgs[j-1]; j-- {
			msgs[j], msgs[j-1] = msgs[j-1], msgs[j]
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Dir is the directory the config was loaded from.
func (c *Server) Dir() string { return c.dir }

// Path resolves a file name from the config against its directory.
func (c *Server) Path(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// StoreURL returns the store URL with a relative SQLite path resolved.
func (c *Server) StoreURL() string {
	if rest, ok := strings.CutPrefix(c.Store, "sqlite://"); ok && !strings.HasPrefix(rest, "/") {
		return "sqlite://" + c.Path(rest)
	}
	if !strings.Contains(c.Store, "://") {
		return c.Path(c.Store)
	}
	return c.Store
}

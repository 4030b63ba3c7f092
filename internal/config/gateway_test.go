package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodGateway = `
listen: 127.0.0.1:8443
trust_domain: example.org
bundle: bundle.pem
cert: gw.pem
key: /abs/gw.key
server:
  url: https://127.0.0.1:9443
  revocation_refresh: 2s
access_log:
  path: access.log
routes:
  - name: api
    host: API.example.org
    path_prefix: /v1
    methods: [get, POST]
    upstream: http://127.0.0.1:8080
    allow: ["spiffe://example.org/svc/billing", "spiffe://example.org/team/*"]
    headers:
      client_cert_chain: false
tcp_routes:
  - name: pg
    listen: 127.0.0.1:15432
    backend: 127.0.0.1:5432
    allow: ["spiffe://example.org/svc/db"]
`

func TestParseGateway(t *testing.T) {
	g, err := ParseGateway("/etc/certgate/gateway.yaml", []byte(goodGateway))
	if err != nil {
		t.Fatal(err)
	}
	r := g.Routes[0]
	if g.Bundle != "/etc/certgate/bundle.pem" || g.Key != "/abs/gw.key" || g.Server.CA != g.Bundle ||
		g.AccessLog.Path != "/etc/certgate/access.log" || r.Host != "api.example.org" ||
		strings.Join(r.Methods, ",") != "GET,POST" || g.Server.RevocationRefresh.Std() != 2*time.Second ||
		g.Timeouts.ReadHeader.Std() != DefaultReadHeaderTimeout || g.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("config = %+v", g)
	}
	if HeaderOn(r.Headers.ClientCertChain) || !HeaderOn(r.Headers.ClientCert) {
		t.Fatal("header switches wrong")
	}
}

func TestParseGatewayErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, err string }{
		{"unknown field", goodGateway + "bogus: 1\n", "config gw.yaml: line 26: bogus: unknown field"},
		{"bad duration", strings.Replace(goodGateway, "revocation_refresh: 2s", "revocation_refresh: soon", 1), `config gw.yaml: line 9: server.revocation_refresh: "soon" is not a duration (e.g. 90s, 15m, 24h)`},
		{"missing fields", "routes: []\n", "config gw.yaml: trust_domain: trust domain is empty\nbundle: is required\ncert: is required\nkey: is required\nroutes: at least one route or tcp_route is required"},
		{"bad upstream", strings.Replace(goodGateway, "http://127.0.0.1:8080", "ftp://x", 1), `config gw.yaml: routes[0].upstream: must be an http:// or https:// URL, got "ftp://x"`},
		{"outside td", strings.Replace(goodGateway, "spiffe://example.org/team/*", "spiffe://other.org/team/*", 1), `config gw.yaml: routes[0].allow[1]: "spiffe://other.org/team/*" is outside the trust domain "example.org"`},
		{"bad pattern", strings.Replace(goodGateway, "spiffe://example.org/team/*", "spiffe://example.org/te*m", 1), `config gw.yaml: routes[0].allow[1]: invalid SPIFFE ID "spiffe://example.org/te*m": path segment "te*m" has invalid character '*'`},
		{"bad method", strings.Replace(goodGateway, "[get, POST]", "[\"GE T\"]", 1), `config gw.yaml: routes[0].methods: invalid method "GE T"`},
		{"http upstream with ca", strings.Replace(goodGateway, "    headers:", "    upstream_ca: ca.pem\n    headers:", 1), `config gw.yaml: routes[0].upstream: upstream_ca, upstream_server_name and upstream_client_cert need an https:// upstream`},
		{"duplicate name", strings.Replace(goodGateway, "name: pg", "name: api", 1), `config gw.yaml: tcp_routes[0].name: duplicate route name "api"`},
		{"bad server url", strings.Replace(goodGateway, "https://127.0.0.1:9443", "http://127.0.0.1:9443", 1), `config gw.yaml: server.url: must be an https:// URL, got "http://127.0.0.1:9443"`},
		{"bad listen", strings.Replace(goodGateway, "listen: 127.0.0.1:8443", "listen: 8443", 1), `config gw.yaml: listen: address 8443: missing port in address`},
		{"empty", "", "config gw.yaml: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error =\n%v\nwant\n%s", err, tc.err)
			}
		})
	}
}

func TestLoadGatewayMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := LoadGateway(p)
	if err == nil || err.Error() != "config: open "+p+": no such file or directory" {
		t.Fatalf("error = %v", err)
	}
	if err := os.WriteFile(p, []byte(goodGateway), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadGateway(p); err != nil {
		t.Fatal(err)
	}
}

func TestParseGatewayAccessLog(t *testing.T) {
	withLog := func(block string) string {
		return strings.Replace(goodGateway, "access_log:\n  path: access.log\n", "access_log:\n  path: access.log\n"+block, 1)
	}
	g, err := ParseGateway("/etc/certgate/gateway.yaml", []byte(withLog(`  compress: true
  max_age: 720h
  max_total_size_mb: 2000
  on_overflow: block
  syslog:
    address: logs.example.org:6514
    tls: {ca: ca.pem, cert: gw.pem, key: gw.key}
`)))
	if err != nil {
		t.Fatal(err)
	}
	a := g.AccessLog
	if !a.Compress || a.MaxAge.Std() != 720*time.Hour || a.MaxTotalSizeMB != 2000 || a.OnOverflow != "block" || a.RotateEvery.Std() != 24*time.Hour ||
		a.Syslog.TLS.CA != "/etc/certgate/ca.pem" || a.Syslog.SpoolDir != "/etc/certgate/access.log.spool" || a.Syslog.SpoolMaxMB != 1024 || a.QueueLines != 32768 {
		t.Fatalf("access_log = %+v", a)
	}
	g, _ = ParseGateway("gw.yaml", []byte(goodGateway))
	if g.AccessLog.OnOverflow != "drop" || g.AccessLog.Syslog.SpoolDir != "" {
		t.Fatalf("defaults = %+v", g.AccessLog)
	}
	// max_backups: unset is the default, an explicit 0 keeps any number
	// of rotated files (it was once taken as unset: a load run lost all
	// but 5 files of its access log).
	for _, tc := range []struct {
		block string
		want  int
	}{{"", DefaultAccessLogMaxBackups}, {"  max_backups: 0\n", 0}, {"  max_backups: 12\n", 12}} {
		g, err := ParseGateway("gw.yaml", []byte(withLog(tc.block)))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.AccessLog.Backups(); got != tc.want {
			t.Errorf("%q: max_backups = %d, want %d", tc.block, got, tc.want)
		}
	}
	for _, tc := range []struct{ block, err string }{
		{"  on_overflow: wait\n", `config gw.yaml: access_log.on_overflow: must be "drop" or "block", got "wait"`},
		{"  max_total_size_mb: 150\n  compress: true\n", "config gw.yaml: access_log.max_total_size_mb: must be at least 200 (max_size_mb, twice with compress), got 150"},
		{"  max_age: -1h\n", "config gw.yaml: access_log: max_size_mb, max_backups, max_total_size_mb, max_age and rotate_every must not be negative"},
		{"  max_backups: -1\n", "config gw.yaml: access_log: max_size_mb, max_backups, max_total_size_mb, max_age and rotate_every must not be negative"},
		{"  syslog: {address: nohost}\n", `config gw.yaml: access_log.syslog.address: must be host:port, got "nohost"`},
		{"  syslog: {address: 'h:1', tls: {cert: a.pem}}\n", "config gw.yaml: access_log.syslog.tls: cert and key go together\naccess_log.syslog.tls.ca: is required with a client certificate (it turns TLS on)"},
		{"  syslog: {tls: {ca: a.pem}}\n", "config gw.yaml: access_log.syslog.address: is required with the other syslog settings"},
		{"  syslog: {address: 'h:1', app_name: 'cert gate'}\n", "config gw.yaml: access_log.syslog.app_name: must be printable US-ASCII without spaces, at most 48 bytes"},
		{"  queue_lines: 3\n", "config gw.yaml: access_log.queue_lines: must be between 16 and 4194304, got 3"},
		{"  syslog: {address: 'h:1', bogus: 1}\n", "config gw.yaml: line 12: access_log.syslog.bogus: unknown field"},
	} {
		_, err := ParseGateway("gw.yaml", []byte(withLog(tc.block)))
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: error = %v\nwant %s", tc.block, err, tc.err)
		}
	}
}

func TestGatewayLegacyKeysRefused(t *testing.T) {
	base := "listen: 127.0.0.1:8443\ntrust_domain: example.org\nbundle: b.pem\ncert: c.pem\nkey: k.pem\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:9000\n    allow: [spiffe://example.org/svc/a]\n"
	for _, tc := range []struct{ lk, want string }{
		{"{header: Cookie, until: \"2027-03-01T00:00:00Z\"}", `routes[0].legacy_keys.header: must be one of ["Authorization" "X-API-Key"], got "Cookie"`},
		{"{header: X-API-Key}", `routes[0].legacy_keys.until: must be an RFC 3339 time such as 2027-03-01T00:00:00Z, got ""`},
		{"{header: Authorization, until: \"2027-03-01T00:00:00Z\", link: \"ftp://x\"}", `routes[0].legacy_keys.link: must be an http:// or https:// URL, got "ftp://x"`},
	} {
		_, err := ParseGateway("gateway.yaml", []byte(base+"    legacy_keys: "+tc.lk+"\n"))
		if err == nil || err.Error() != "config gateway.yaml: "+tc.want {
			t.Errorf("legacy_keys %s: %v\nwant %s", tc.lk, err, tc.want)
		}
	}
	if _, err := ParseGateway("gateway.yaml", []byte(base+"    legacy_keys: {header: X-API-Key, until: \"2027-03-01T00:00:00Z\", secret: x}\n")); err == nil || err.Error() != "config gateway.yaml: line 10: routes[0].legacy_keys.secret: unknown field" {
		t.Errorf("unknown field: %v", err)
	}
}

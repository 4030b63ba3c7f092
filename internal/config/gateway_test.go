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

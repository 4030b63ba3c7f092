package config

import (
	"strings"
	"testing"
	"time"
)

func TestGatewayRevocationDefaults(t *testing.T) {
	g, err := ParseGateway("/etc/certgate/gateway.yaml", []byte(goodGateway))
	if err != nil {
		t.Fatal(err)
	}
	if g.Revocation.Mode != RevocationFeed || g.Revocation.MaxStaleness.Std() != 5*time.Minute ||
		g.Revocation.IdleTimeout.Std() != 10*time.Second || g.Revocation.MaxBackoff.Std() != 15*time.Second {
		t.Fatalf("revocation = %+v", g.Revocation)
	}
	if u := g.ServerURLs(); len(u) != 1 || u[0] != "https://127.0.0.1:9443" {
		t.Fatalf("ServerURLs = %q", u)
	}

	// Without a server there is no mode: nothing to follow.
	noServer := strings.Replace(goodGateway, "  url: https://127.0.0.1:9443\n", "", 1)
	g, err = ParseGateway("gw.yaml", []byte(noServer))
	if err != nil {
		t.Fatal(err)
	}
	if g.Revocation.Mode != "" || len(g.ServerURLs()) != 0 {
		t.Fatalf("mode %q, urls %q", g.Revocation.Mode, g.ServerURLs())
	}

	// A list of replicas, the single URL first, duplicates dropped; pull
	// mode and explicit limits kept.
	many := strings.Replace(goodGateway, "  revocation_refresh: 2s\n", `  revocation_refresh: 2s
  urls: ["https://b.example:9443", "https://127.0.0.1:9443", "https://c.example:9443"]
revocation:
  mode: pull
  max_staleness: 90s
  idle_timeout: 3s
  max_backoff: 1s
`, 1)
	g, err = ParseGateway("gw.yaml", []byte(many))
	if err != nil {
		t.Fatal(err)
	}
	if u := strings.Join(g.ServerURLs(), " "); u != "https://127.0.0.1:9443 https://b.example:9443 https://c.example:9443" {
		t.Fatalf("ServerURLs = %s", u)
	}
	if g.Revocation.Mode != RevocationPull || g.Revocation.MaxStaleness.Std() != 90*time.Second ||
		g.Revocation.IdleTimeout.Std() != 3*time.Second || g.Revocation.MaxBackoff.Std() != time.Second {
		t.Fatalf("revocation = %+v", g.Revocation)
	}
}

func TestGatewayRevocationErrors(t *testing.T) {
	noServer := strings.Replace(goodGateway, "  url: https://127.0.0.1:9443\n", "", 1)
	with := func(base, extra string) string {
		return strings.Replace(base, "access_log:\n", extra+"access_log:\n", 1)
	}
	for _, tc := range []struct{ name, yaml, err string }{
		{"unknown mode", with(goodGateway, "revocation:\n  mode: push\n"), `config gw.yaml: revocation.mode: must be "feed" or "pull", got "push"`},
		{"mode without server", with(noServer, "revocation:\n  mode: feed\n"), `config gw.yaml: revocation.mode: "feed" needs server.url or server.urls`},
		{"staleness too small", with(goodGateway, "revocation:\n  max_staleness: 500ms\n"), `config gw.yaml: revocation.max_staleness: must be at least 1s, got 500ms`},
		{"negative staleness", with(goodGateway, "revocation:\n  max_staleness: -1m\n"), `config gw.yaml: revocation.max_staleness: must be at least 1s, got -1m0s`},
		{"idle too small", with(goodGateway, "revocation:\n  idle_timeout: 1ms\n"), `config gw.yaml: revocation.idle_timeout: must be at least 100ms, got 1ms`},
		{"backoff too small", with(goodGateway, "revocation:\n  max_backoff: 1ns\n"), `config gw.yaml: revocation.max_backoff: must be at least 100ms, got 1ns`},
		{"bad replica url", strings.Replace(goodGateway, "  revocation_refresh: 2s\n", "  revocation_refresh: 2s\n  urls: [\"https://ok:1\", \"http://plain:2\"]\n", 1), `config gw.yaml: server.urls[1]: must be an https:// URL, got "http://plain:2"`},
		{"unknown field", with(goodGateway, "revocation:\n  stale_after: 1m\n"), "config gw.yaml: line 11: revocation.stale_after: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error = %v\nwant    %s", err, tc.err)
			}
		})
	}
}

package config

import (
	"strings"
	"testing"
)

func withRateLimit(rl string) string {
	return strings.Replace(goodGateway, "    headers:\n      client_cert_chain: false\n", "    headers:\n      client_cert_chain: false\n    rate_limit:\n"+rl, 1)
}

// TestGatewayRateLimit: defaults (burst from the rate, the table bound),
// overrides, and the usage section's defaults.
func TestGatewayRateLimit(t *testing.T) {
	g, err := ParseGateway("gw.yaml", []byte(withRateLimit("      requests_per_second: 2.5\n      overrides:\n        - identities: [\"spiffe://example.org/svc/batch/*\"]\n          requests_per_second: 100\n")))
	if err != nil {
		t.Fatal(err)
	}
	rl := g.Routes[0].RateLimit
	if rl.RequestsPerSecond != 2.5 || rl.Burst != 3 || rl.MaxIdentities != DefaultRateLimitMaxIdentities || len(rl.Overrides) != 1 || rl.Overrides[0].Burst != 100 {
		t.Errorf("rate_limit = %+v", rl)
	}
	if g.Usage.FlushInterval.Std() != DefaultUsageFlushInterval || g.Usage.MaxEntries != DefaultUsageMaxEntries || g.Usage.Sharing.MaxSources != 1 || g.Usage.Sharing.Window.Std() != DefaultSharingWindow {
		t.Errorf("usage = %+v", g.Usage)
	}
}

func TestGatewayRateLimitErrors(t *testing.T) {
	for _, tc := range []struct{ name, rl, err string }{
		{"negative rate", "      requests_per_second: -1\n", "config gw.yaml: routes[0].rate_limit.requests_per_second: must be above 0 and at most 1e9 when rate_limit is set, got -1"},
		{"burst without rate", "      burst: 5\n", "config gw.yaml: routes[0].rate_limit.requests_per_second: must be above 0 and at most 1e9 when rate_limit is set, got 0"},
		{"negative burst", "      requests_per_second: 1\n      burst: -2\n", "config gw.yaml: routes[0].rate_limit.burst: must be between 1 and 1e9, got -2"},
		{"tiny table", "      requests_per_second: 1\n      max_identities: 10\n", "config gw.yaml: routes[0].rate_limit.max_identities: must be between 64 and 10000000, got 10"},
		{"override without identities", "      requests_per_second: 1\n      overrides:\n        - requests_per_second: 5\n", "config gw.yaml: routes[0].rate_limit.overrides[0].identities: is required"},
		{"override other domain", "      requests_per_second: 1\n      overrides:\n        - identities: [\"spiffe://evil.org/x\"]\n          requests_per_second: 5\n",
			`config gw.yaml: routes[0].rate_limit.overrides[0].identities[0]: "spiffe://evil.org/x" is outside the trust domain "example.org"`},
		{"override without rate", "      requests_per_second: 1\n      overrides:\n        - identities: [\"spiffe://example.org/x\"]\n", "config gw.yaml: routes[0].rate_limit.overrides[0].requests_per_second: must be above 0 and at most 1e9, got 0"},
		{"unknown field", "      requests_per_minute: 1\n", "config gw.yaml: line 22: routes[0].rate_limit.requests_per_minute: unknown field; did you mean requests_per_second?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(withRateLimit(tc.rl)))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error = %v\nwant    %s", err, tc.err)
			}
		})
	}
	for _, tc := range []struct{ name, yaml, err string }{
		{"flush too often", "usage:\n  flush_interval: 1ms\n", "config gw.yaml: usage.flush_interval: must be at least 100ms, got 1ms"},
		{"table too big", "usage:\n  max_entries: 50000\n", "config gw.yaml: usage.max_entries: must be between 1 and 20000, got 50000"},
		{"sources", "usage:\n  sharing:\n    max_sources: 99\n", "config gw.yaml: usage.sharing.max_sources: must be between 1 and 32, got 99"},
		{"window", "usage:\n  sharing:\n    window: 10ms\n", "config gw.yaml: usage.sharing.window: must be at least 1s, got 10ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(strings.Replace(goodGateway, "access_log:\n", tc.yaml+"access_log:\n", 1)))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error = %v\nwant    %s", err, tc.err)
			}
		})
	}
}

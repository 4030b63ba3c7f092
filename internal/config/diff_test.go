package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChanged(t *testing.T) {
	a := DefaultServer("example.org")
	b := a
	b.Listen.Hostnames = append([]string{"ca.example.org"}, a.Listen.Hostnames...)
	b.Profiles.ClientLifetime = time.Hour
	b.Log.Level = "debug"
	b.Listen.Listen = "127.0.0.1:9000"
	got := Changed(&a, &b)
	want := []string{"profiles.client_lifetime", "server.listen", "server.hostnames", "log.level"}
	if !slices.Equal(got, want) {
		t.Fatalf("Changed = %q, want %q", got, want)
	}
	if got := Changed(&a, &a); len(got) != 0 {
		t.Fatalf("Changed(a, a) = %q", got)
	}
	all := Settings(&a)
	for _, p := range []string{"trust_domain", "ca.rotation.check_interval", "server.metrics_listen", "log.level", "admin.bundle"} {
		if !slices.Contains(all, p) {
			t.Errorf("Settings lacks %s: %q", p, all)
		}
	}
}

// TestSchemaErrors: a mistake in a config file is named by its path as
// written, with the closest valid field when it looks like a typo, and
// never by a Go type.
func TestSchemaErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"typo in a route", "routes:\n  - name: r\n    path_prefx: /v1\n",
			"config gw.yaml: line 3: routes[0].path_prefx: unknown field; did you mean path_prefix?"},
		{"typo at the top", "trust_domian: example.org\n",
			"config gw.yaml: line 1: trust_domian: unknown field; did you mean trust_domain?"},
		{"case", "Listen: :8443\n",
			"config gw.yaml: line 1: Listen: unknown field; did you mean listen?"},
		{"nothing close", "frobnicate: 1\n",
			"config gw.yaml: line 1: frobnicate: unknown field"},
		{"two at once", "metrics:\n  listn: x\naccess_log:\n  max_size: 3\n",
			"config gw.yaml: line 2: metrics.listn: unknown field; did you mean listen?; line 4: access_log.max_size: unknown field"},
		{"not a number", "max_header_bytes: lots\n",
			`config gw.yaml: line 1: max_header_bytes: "lots" is not a whole number`},
		{"not a bool", "access_log:\n  query: maybe\n",
			`config gw.yaml: line 2: access_log.query: "maybe" is not true or false`},
		{"list expected", "routes:\n  name: r\n",
			"config gw.yaml: line 2: routes: is not a list"},
		{"mapping expected", "timeouts: 5s\n",
			"config gw.yaml: line 1: timeouts: is not a mapping of settings"},
		{"bad duration in a list", "routes:\n  - name: a\n  - name: b\n    headers:\n      xfcc: sometimes\n",
			`config gw.yaml: line 5: routes[1].headers.xfcc: "sometimes" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "config.") || strings.Contains(err.Error(), "time.") {
				t.Fatalf("error names a Go type: %v", err)
			}
		})
	}
}

package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRenderRoundTrip(t *testing.T) {
	want := DefaultServer("example.org")
	data, err := want.Render()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	got.dir = ""
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, want)
	}
}

func TestParseServerErrors(t *testing.T) {
	good, _ := DefaultServer("example.org").Render()
	for name, tc := range map[string]struct {
		data string
		want string
	}{
		"misspelled field": {strings.Replace(string(good), "  max_ttl:", "  max_tll:", 1),
			"config /x/certgate.yaml: line 78: tokens.max_tll: unknown field; did you mean max_ttl?"},
		"unknown top-level": {string(good) + "extra: 1\n",
			"config /x/certgate.yaml: line 136: extra: unknown field"},
		"bad duration": {strings.Replace(string(good), "default_ttl: 15m0s", "default_ttl: soon", 1),
			`config /x/certgate.yaml: line 76: tokens.default_ttl: "soon" is not a duration (e.g. 90s, 15m, 24h)`},
		"empty":     {"", "config /x/certgate.yaml: empty"},
		"two docs":  {string(good) + "---\ntrust_domain: x\n", "config /x/certgate.yaml: more than one YAML document"},
		"oversized": {strings.Repeat("#", MaxFileSize+1), "config /x/certgate.yaml: larger than 1048576 bytes"},
		"invalid values": {strings.NewReplacer("trust_domain: example.org", "trust_domain: Bad", "key_type: ecdsa-p256", "key_type: dsa",
			"url: https://127.0.0.1:8444", "url: http://x").Replace(string(good)),
			`config /x/certgate.yaml: ca.key_type: unsupported key type "dsa" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096); server.url: "http://x" is not an https:// URL; trust_domain: trust domain "Bad" has invalid character 'B' (lowercase letters, digits, '.', '-', '_' only)`},
		"bad rotation": {strings.NewReplacer("    at: 0.6666666666666666", "    at: 1.5", "    check_interval: 1m0s", "    check_interval: 10ms",
			`metrics_listen: ""`, `metrics_listen: "nowhere"`).Replace(string(good)),
			`config /x/certgate.yaml: ca.rotation.at: 1.5 is not a fraction between 0 and 1; ca.rotation.check_interval: 10ms is shorter than 1s; server.metrics_listen: address nowhere: missing port in address`},
		"bad status listener": {strings.NewReplacer(`status_listen: ""`, `status_listen: "127.0.0.1"`, `status_url: ""`, `status_url: "ftp://x/"`).Replace(string(good)),
			`config /x/certgate.yaml: server.status_listen: address 127.0.0.1: missing port in address; server.status_url: "ftp://x/" is not an http:// or https:// URL`},
		"status url without host": {strings.Replace(string(good), `status_url: ""`, `status_url: "http:///crl"`, 1),
			`config /x/certgate.yaml: server.status_url: "http:///crl" is not an http:// or https:// URL`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseServer("/x/certgate.yaml", []byte(tc.data))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestESTBootstrap: bootstrap CAs survive Render and LoadServer, and each
// bad entry is named.
func TestESTBootstrap(t *testing.T) {
	want := DefaultServer("example.org")
	want.EST.Bootstrap = []ESTBootstrap{{Name: "acme", Bundle: "acme devices.pem", IdentityPrefix: "/device/"}}
	data, err := want.Render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseServer("/x/certgate.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.EST, want.EST) {
		t.Fatalf("round trip: %+v, want %+v", got.EST, want.EST)
	}
	bad := DefaultServer("example.org")
	bad.EST.Bootstrap = []ESTBootstrap{
		{Name: "acme", Bundle: "a.pem", IdentityPrefix: "/admin/"},
		{Name: "acme", Bundle: "", IdentityPrefix: "device"},
		{Name: "gw", Bundle: "g.pem", IdentityPrefix: "/gateway/x/"},
	}
	data, _ = bad.Render()
	_, err = ParseServer("/x/certgate.yaml", data)
	const msg = `config /x/certgate.yaml: est.bootstrap[0].identity_prefix: "/admin/" is a role's prefix; a bootstrap certificate grants no role; ` +
		`est.bootstrap[1].bundle: is empty; est.bootstrap[1].identity_prefix: "device" is not a path like /device/; est.bootstrap[1].name: "acme" is empty or not unique; ` +
		`est.bootstrap[2].identity_prefix: "/gateway/x/" is a role's prefix; a bootstrap certificate grants no role`
	if err == nil || err.Error() != msg {
		t.Fatalf("got  %v\nwant %s", err, msg)
	}
}

func TestStoreURL(t *testing.T) {
	c := DefaultServer("example.org")
	c.dir = "/etc/certgate"
	for in, want := range map[string]string{
		"sqlite://certgate.db":        "sqlite:///etc/certgate/certgate.db",
		"sqlite:///var/lib/c.db":      "sqlite:///var/lib/c.db",
		"data/c.db":                   "/etc/certgate/data/c.db",
		"postgres://postgres@db/test": "postgres://postgres@db/test",
	} {
		c.Store = in
		if got := c.StoreURL(); got != want {
			t.Errorf("StoreURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderWritesEverySetting: "every setting and its default written
// out" means every yaml field of Server appears in the rendered file.
func TestRenderWritesEverySetting(t *testing.T) {
	data, err := DefaultServer("example.org").Render()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" {
				continue
			}
			if !strings.Contains(string(data), "\n"+prefix+tag+":") {
				t.Errorf("rendered config lacks %s%s", prefix, tag)
			}
			if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
				walk(f.Type, prefix+"  ")
			}
		}
	}
	walk(reflect.TypeOf(Server{}), "")
}

// TestStatusListener: status_url defaults to http://STATUS_LISTEN, an
// explicit one is kept, and both survive Render and LoadServer.
func TestStatusListener(t *testing.T) {
	for name, tc := range map[string]struct{ listen, url, want string }{
		"off":          {"", "", ""},
		"default url":  {"0.0.0.0:8080", "", "http://0.0.0.0:8080"},
		"explicit url": {"[::]:8080", "http://ca.example.org:8080", "http://ca.example.org:8080"},
		"url only":     {"", "https://cdn.example.org/certgate", "https://cdn.example.org/certgate"},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultServer("example.org")
			c.Listen.StatusListen, c.Listen.StatusURL = tc.listen, tc.url
			data, err := c.Render()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseServer("/x/certgate.yaml", data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Listen.StatusListen != tc.listen || got.Listen.StatusURL != tc.want {
				t.Fatalf("status_listen %q status_url %q, want %q %q", got.Listen.StatusListen, got.Listen.StatusURL, tc.listen, tc.want)
			}
		})
	}
}

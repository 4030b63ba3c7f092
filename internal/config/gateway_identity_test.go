package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

const identityGateway = `
listen: 127.0.0.1:8443
trust_domain: example.org
identity:
  dir: gw
  hosts: [gw.example.org, 127.0.0.1, "::1"]
  token_file: gw.token
routes:
  - name: api
    upstream: http://127.0.0.1:8080
    allow: ["spiffe://example.org/svc/*"]
`

func TestParseGatewayIdentity(t *testing.T) {
	g, err := ParseGateway("/etc/certgate/gateway.yaml", []byte(identityGateway))
	if err != nil {
		t.Fatal(err)
	}
	if g.Identity.Dir != "/etc/certgate/gw" || g.Identity.TokenFile != "/etc/certgate/gw.token" ||
		g.Bundle != "/etc/certgate/gw/bundle.pem" || g.Server.CA != g.Bundle || g.Cert != "" || g.Key != "" {
		t.Fatalf("config = %+v", g)
	}
	dns, ips := g.Identity.HostNames()
	if !slices.Equal(dns, []string{"gw.example.org"}) || !slices.EqualFunc(ips, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, net.IP.Equal) {
		t.Fatalf("hosts: %v %v", dns, ips)
	}
	// An explicit bundle wins over the enrolled one.
	g, err = ParseGateway("/etc/certgate/gateway.yaml", []byte(strings.Replace(identityGateway, "identity:", "bundle: /etc/roots.pem\nidentity:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if g.Bundle != "/etc/roots.pem" {
		t.Fatalf("bundle = %s", g.Bundle)
	}
}

func TestParseGatewayIdentityErrors(t *testing.T) {
	hosts := "hosts: [gw.example.org, 127.0.0.1, \"::1\"]"
	for _, tc := range []struct{ name, yaml, err string }{
		{"cert and identity", strings.Replace(identityGateway, "identity:", "cert: gw.pem\nkey: gw.key\nidentity:", 1),
			"cert: must not be set with identity.dir (the gateway's certificate is kept there)\nkey: must not be set with identity.dir (the gateway's certificate is kept there)"},
		{"no hosts", strings.Replace(identityGateway, hosts, "", 1), "identity.hosts: at least one DNS name or IP address is required"},
		{"wildcard", strings.Replace(identityGateway, "gw.example.org", `"*.example.org"`, 1),
			`identity.hosts[0]: "*.example.org" is neither an IP address nor a DNS name: invalid character '*'`},
		{"url", strings.Replace(identityGateway, "gw.example.org", "https://gw", 1),
			`identity.hosts[0]: "https://gw" is neither an IP address nor a DNS name: invalid character ':'`},
		{"duplicate", strings.Replace(identityGateway, "127.0.0.1,", "GW.example.org,", 1), `identity.hosts[1]: duplicate host "GW.example.org"`},
		{"too many", strings.Replace(identityGateway, hosts, "hosts: ["+manyHosts(33)+"]", 1), "identity.hosts: at most 32 names, got 33"},
		{"key type", strings.Replace(identityGateway, "token_file:", "key_type: dsa\n  token_file:", 1),
			`identity.key_type: unsupported key type "dsa" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)`},
		{"key store", strings.Replace(identityGateway, "token_file:", "key_store: /dev/tpmrm0\n  token_file:", 1),
			`identity.key_store: "/dev/tpmrm0" is neither a pkcs11: nor a tpm: URI`},
		{"no dir", strings.Replace(identityGateway, "  dir: gw\n", "", 1),
			"bundle: is required\ncert: is required\nkey: is required\nidentity.dir: is required with identity.hosts, identity.token_file, identity.key_type or identity.key_store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGateway("gw.yaml", []byte(tc.yaml))
			if want := "config gw.yaml: " + tc.err; err == nil || err.Error() != want {
				t.Fatalf("error:\n%v\nwant\n%s", err, want)
			}
		})
	}
}

func manyHosts(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "h%d.example.org,", i)
	}
	return b.String()
}

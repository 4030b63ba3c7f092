package agent

import (
	"context"
	"crypto/x509"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
)

// A gateway's certificate keeps its DNS and IP names across renewals (the
// server takes them from the request), so it goes on serving TLS for them.
func TestRenewalKeepsHostNames(t *testing.T) {
	e := newEnv(t, time.Hour)
	tok, err := e.authz.CreateToken(context.Background(), "spiffe://example.org/admin/test", identity.MustParse("spiffe://example.org/gateway/gw1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "gw")
	dns, ips := []string{"gw.example.org", "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("::1")}
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok.String(), OutDir: dir, Now: e.clock.Now, DNSNames: dns, IPAddresses: ips}); err != nil {
		t.Fatal(err)
	}
	a, _ := e.newAgent(dir, midJitter)
	run(t, a)
	prev := readLeaf(t, dir)
	for n := 1; n <= 2; n++ {
		e.waitSleeping(t)
		e.clock.AdvanceTo(a.Status().NextRenewal)
		waitFor(t, "a renewal", func() bool { return a.Status().Renewals == n })
		leaf := readLeaf(t, dir)
		if leaf.Equal(prev) {
			t.Fatalf("renewal %d: cert.pem did not change", n)
		}
		if !slices.Equal(leaf.DNSNames, dns) || !slices.EqualFunc(leaf.IPAddresses, ips, net.IP.Equal) {
			t.Fatalf("renewal %d: DNS %v, IP %v; want %v, %v", n, leaf.DNSNames, leaf.IPAddresses, dns, ips)
		}
		if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			t.Fatalf("renewal %d: extended key usage %v lacks serverAuth", n, leaf.ExtKeyUsage)
		}
		if got := tlsCert(t, a).Leaf; !got.Equal(leaf) {
			t.Fatalf("renewal %d: the agent presents serial %s, cert.pem holds %s", n, got.SerialNumber.Text(16), leaf.SerialNumber.Text(16))
		}
		prev = leaf
	}
}

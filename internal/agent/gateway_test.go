package agent

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
)

// SetupGateway enrolls the gateway's own certificate once, from the token
// file, with its host names, then reuses it; it refuses what cannot make a
// gateway certificate, each with the error the operator reads.
func TestSetupGateway(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "gw")
	o := GatewayOptions{Dir: dir, TrustDomain: td, Hosts: []string{"127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Clock: e.clock, Log: slog.New(slog.DiscardHandler)}

	if _, err := SetupGateway(ctx, o); err == nil || err.Error() != "gateway: identity.dir "+dir+
		" holds no certificate: give an enrollment token for spiffe://example.org/gateway/<name> with --token, CERTGATE_TOKEN or identity.token_file" {
		t.Fatalf("no token: %v", err)
	}
	client := o
	client.Token = e.te.Token(t, "spiffe://example.org/svc/billing", time.Hour)
	if _, err := SetupGateway(ctx, client); err == nil || err.Error() !=
		"gateway: the enrollment token is for spiffe://example.org/svc/billing; a gateway needs a token for spiffe://example.org/gateway/<name>" {
		t.Fatalf("client token: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused token left %s behind: %v", dir, err)
	}

	o.TokenFile = filepath.Join(t.TempDir(), "token")
	os.WriteFile(o.TokenFile, []byte(e.te.Token(t, "spiffe://example.org/gateway/gw1", time.Hour)+"\n"), 0o600)
	g, err := SetupGateway(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	leaf := g.Certificate().Leaf
	if g.ServerURL != e.url || leaf.URIs[0].String() != "spiffe://example.org/gateway/gw1" ||
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || len(leaf.IPAddresses) != 1 {
		t.Fatalf("server %s, leaf %v %v %v", g.ServerURL, leaf.URIs, leaf.ExtKeyUsage, leaf.IPAddresses)
	}
	// Enrolled: the token (already used) is not needed again.
	again, err := SetupGateway(ctx, o)
	if err != nil || again.Certificate().Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("second start: %v, serial %v want %v", err, again.Certificate().Leaf.SerialNumber, leaf.SerialNumber)
	}

	// A client certificate in the directory cannot serve as a gateway's.
	cdir := filepath.Join(t.TempDir(), "client")
	e.te.WriteClientFiles(t, cdir, e.te.IssueDirect(t, "/svc/billing", ca.ClientProfile))
	c := o
	c.Dir = cdir
	if _, err := SetupGateway(ctx, c); err == nil || !strings.HasSuffix(err.Error(), " is for spiffe://example.org/svc/billing, which cannot serve TLS as a gateway; enroll with a token for spiffe://example.org/gateway/<name>") {
		t.Fatalf("client certificate: %v", err)
	}
}

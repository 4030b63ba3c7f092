package enroll_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/testenv"
)

// A gateway enrolls with its host names: the certificate serves TLS for
// them and still authenticates the gateway as a client.
func TestEnrollWithHosts(t *testing.T) {
	e := testenv.Start(t)
	dir := filepath.Join(t.TempDir(), "gw")
	res, err := enroll.Enroll(context.Background(), enroll.Options{
		Token: e.Token(t, "spiffe://example.org/gateway/gw1", time.Hour), OutDir: dir,
		DNSNames: []string{"gw.example.org", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := testenv.ReadLeaf(t, dir)
	if leaf.SerialNumber.Text(16) != res.Serial || res.Identity.String() != "spiffe://example.org/gateway/gw1" {
		t.Fatalf("result %+v does not describe %s", res, leaf.SerialNumber.Text(16))
	}
	if !slices.Equal(leaf.DNSNames, []string{"gw.example.org", "localhost"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("names: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("extended key usage %v, want serverAuth and clientAuth", leaf.ExtKeyUsage)
	}
	if err := leaf.VerifyHostname("gw.example.org"); err != nil {
		t.Fatal(err)
	}
}

// A client identity may not ask for host names; nothing is written.
func TestEnrollHostsRefusedForClient(t *testing.T) {
	e := testenv.Start(t)
	dir := filepath.Join(t.TempDir(), "svc")
	_, err := enroll.Enroll(context.Background(), enroll.Options{
		Token: e.Token(t, "spiffe://example.org/svc/billing", time.Hour), OutDir: dir, DNSNames: []string{"billing.example.org"},
	})
	want := "enroll: server said 400 bad_csr: csr: request has DNS SANs [billing.example.org] (only the SPIFFE ID is allowed)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a refused enrollment", dir)
	}
}

func TestCheckHosts(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"GW.example.org"}, IPAddresses: []net.IP{net.ParseIP("::1")}}
	if err := enroll.CheckHosts(cert, []string{"gw.example.org"}, []net.IP{net.ParseIP("::1")}); err != nil {
		t.Fatal(err)
	}
	err := enroll.CheckHosts(cert, []string{"gw.example.org", "other.example.org"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if want := "the certificate does not name other.example.org, 127.0.0.1"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

package testenv_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/token"
)

// The Env serves the API: the admin lists the certificates (its own and
// the server's serving and OCSP signing certificates), a token enrolls a client, a directly issued client
// certificate verifies against Roots for client auth.
func TestStart(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	if e.TrustDomain != "example.org" || e.AdminID.String() != "spiffe://example.org/admin/alice" || e.URL != "https://"+e.Addr {
		t.Fatalf("trust domain %s, admin %s, URL %s (address %s)", e.TrustDomain, e.AdminID, e.URL, e.Addr)
	}
	certs, err := e.Client(t, &e.AdminCert).ListCertificates(ctx, apiclient.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range certs {
		ids = append(ids, c.Identity)
	}
	slices.Sort(ids)
	if want := []string{"spiffe://example.org/admin/alice", "spiffe://example.org/server", "spiffe://example.org/server/ocsp-signer"}; !slices.Equal(ids, want) {
		t.Fatalf("certificates %v, want %v", ids, want)
	}

	dir := filepath.Join(t.TempDir(), "billing")
	res, err := enroll.Enroll(ctx, enroll.Options{Token: e.Token(t, "spiffe://example.org/svc/billing", time.Hour), OutDir: dir})
	if err != nil || res.Identity.String() != "spiffe://example.org/svc/billing" {
		t.Fatalf("enroll: %+v %v", res, err)
	}

	c := e.IssueDirect(t, "/svc/reports", ca.ClientProfile)
	if len(c.Certificate) != 2 || c.Leaf == nil || len(c.Leaf.IPAddresses) != 0 || len(c.Leaf.DNSNames) != 0 {
		t.Fatalf("chain of %d, leaf %v, IPs %v, DNS %v", len(c.Certificate), c.Leaf != nil, c.Leaf.IPAddresses, c.Leaf.DNSNames)
	}
	verifyFor(t, e, c, x509.ExtKeyUsageClientAuth)
	if id, err := identity.FromCertificate(c.Leaf); err != nil || id.String() != "spiffe://example.org/svc/reports" {
		t.Fatalf("identity %v %v", id, err)
	}
}

func verifyFor(t *testing.T, e *testenv.Env, c tls.Certificate, usage x509.ExtKeyUsage) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: e.Roots, Intermediates: inter, CurrentTime: e.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatal(err)
	}
}

// A certificate whose profile allows host names serves TLS on 127.0.0.1
// and localhost; WriteClientFiles writes it as enroll does.
func TestIssueDirectHostsAndFiles(t *testing.T) {
	e := testenv.Start(t)
	c := e.IssueDirect(t, "/gateway/gw1", ca.GatewayProfile)
	if !slices.Equal(c.Leaf.DNSNames, []string{"localhost"}) || len(c.Leaf.IPAddresses) != 1 || !c.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("DNS %v, IP %v", c.Leaf.DNSNames, c.Leaf.IPAddresses)
	}
	verifyFor(t, e, c, x509.ExtKeyUsageServerAuth)

	dir := filepath.Join(t.TempDir(), "gw")
	e.WriteClientFiles(t, dir, c)
	fi, err := os.Stat(filepath.Join(dir, certgatetls.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v, want mode 0600", fi, err)
	}
	loaded, err := tls.LoadX509KeyPair(filepath.Join(dir, certgatetls.CertFile), filepath.Join(dir, certgatetls.KeyFile))
	if err != nil || len(loaded.Certificate) != 2 || !loaded.Leaf.Equal(c.Leaf) {
		t.Fatalf("cert.pem and key.pem: %v", err)
	}
	if !testenv.ReadLeaf(t, dir).Equal(c.Leaf) {
		t.Fatal("ReadLeaf does not return the leaf written")
	}
	bundle, err := os.ReadFile(filepath.Join(dir, certgatetls.BundleFile))
	if err != nil || string(bundle) != string(e.BundlePEM) {
		t.Fatalf("bundle.pem: %q %v, want the root", bundle, err)
	}
}

// Options: a fake clock far from the real time (the server still becomes
// ready, verified at the clock's time), another trust domain, server and
// service options, status URLs.
func TestOptions(t *testing.T) {
	clk := clock.NewFake(time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC))
	e := testenv.Start(t, testenv.WithClock(clk), testenv.WithTrustDomain("corp.test"), testenv.WithStatusURLs(),
		testenv.WithServerOptions(func(o *server.Options) { o.Hostnames = []string{"127.0.0.1", "localhost"} }),
		testenv.WithServiceOptions(func(o *ca.ServiceOptions) { o.TokenTTL = 5 * time.Minute }))
	if !e.Root.NotBefore.Before(clk.Now()) || !e.Root.NotAfter.After(clk.Now()) {
		t.Fatalf("root valid %v to %v, want around %v", e.Root.NotBefore, e.Root.NotAfter, clk.Now())
	}
	if e.AdminID.String() != "spiffe://corp.test/admin/alice" {
		t.Fatalf("admin %s", e.AdminID)
	}
	tok, err := token.Parse(e.Token(t, "spiffe://corp.test/svc/a", 0))
	if err != nil || !tok.ExpiresAt.Equal(clk.Now().Add(5*time.Minute)) {
		t.Fatalf("token %+v %v, want the service's TTL of 5m", tok.Claims, err)
	}
	c := e.IssueDirect(t, "/svc/a", ca.ClientProfile)
	if !slices.Equal(c.Leaf.CRLDistributionPoints, []string{e.URL + "/crl"}) || !slices.Equal(c.Leaf.OCSPServer, []string{e.URL + "/ocsp"}) {
		t.Fatalf("CRL %v, OCSP %v", c.Leaf.CRLDistributionPoints, c.Leaf.OCSPServer)
	}
	serving := servingCert(t, e)
	if !slices.Equal(serving.DNSNames, []string{"localhost"}) {
		t.Fatalf("serving certificate DNS names %v", serving.DNSNames)
	}
}

func servingCert(t *testing.T, e *testenv.Env) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", e.Addr, &tls.Config{RootCAs: e.Roots, ServerName: "127.0.0.1", Time: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// WithListener and WithServerURL: the server serves on the given listener
// and tokens name the given URL.
func TestListenerAndURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := testenv.Start(t, testenv.WithListener(ln), testenv.WithServerURL("https://relay.example:8443"))
	if e.Addr != ln.Addr().String() || e.URL != "https://relay.example:8443" {
		t.Fatalf("address %s, URL %s", e.Addr, e.URL)
	}
	tok, err := token.Parse(e.Token(t, "spiffe://example.org/svc/billing", 0))
	if err != nil || tok.ServerURL != "https://relay.example:8443" {
		t.Fatalf("token: %+v %v", tok, err)
	}
	servingCert(t, e)
}

// WithStore wraps the store the CA service writes through.
func TestWithStoreFaults(t *testing.T) {
	f := &storetest.Faulty{}
	e := testenv.Start(t, testenv.WithStore(func(s store.Store) store.Store { f.Store = s; return f }))
	f.Fail = storetest.FailOn(storetest.ErrInjected, "RecordIssuance")
	_, err := e.Authority.IssueDirect(context.Background(), ca.Request{PublicKey: e.AdminCert.Leaf.PublicKey, Identity: identity.MustParse("spiffe://example.org/svc/x")}, ca.ClientProfile, store.ObtainedInit, "test")
	if !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("issue with RecordIssuance failing: %v", err)
	}
}

// A stopped server refuses connections; a restarted one serves on the
// same address; restarting a running one is refused.
func TestStopRestart(t *testing.T) {
	e := testenv.Start(t)
	first := e.Server
	if err := e.RestartServer(); err == nil || err.Error() != "testenv: the server is running" {
		t.Fatalf("restart while running: %v", err)
	}
	if err := e.StopServer(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", e.Addr); err == nil {
		c.Close()
		t.Fatal("a stopped server accepted a connection")
	}
	if err := e.RestartServer(); err != nil {
		t.Fatal(err)
	}
	if e.Server == first {
		t.Fatal("the restarted server is the same instance")
	}
	if _, err := e.Client(t, &e.AdminCert).ListCertificates(context.Background(), apiclient.ListFilter{}); err != nil {
		t.Fatal(err)
	}
}

// New works without a *testing.T; Close removes its directory.
func TestNewClose(t *testing.T) {
	e, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "certgate.db")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s after Close: %v", e.Dir, err)
	}
	if _, err := net.Dial("tcp", e.Addr); err == nil {
		t.Fatal("the server still accepts after Close")
	}
}

// A trust domain the CA refuses fails New with the CA's message and
// leaves nothing behind.
func TestNewRefusesBadTrustDomain(t *testing.T) {
	_, err := testenv.New(testenv.WithTrustDomain("Not A Domain"))
	if err == nil || err.Error() != `testenv: ca: trust domain "Not A Domain" has invalid character 'N' (lowercase letters, digits, '.', '-', '_' only)` {
		t.Fatalf("error: %v", err)
	}
}

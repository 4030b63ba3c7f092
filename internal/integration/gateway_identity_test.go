package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// identitySetup is a real CA and server on a SQLite store
// (internal/testenv), reached through a link the test can cut, with
// one-hour certificates and a fake clock shared by the server, the gateway
// and the gateway's agent.
type identitySetup struct {
	env       *testenv.Env
	clock     *clock.Fake
	authority *ca.Service
	link      *testenv.Link
	serverLog *testenv.SyncBuffer
	upstream  string
}

const identityLifetime = time.Hour

func newIdentitySetup(t *testing.T) *identitySetup {
	t.Helper()
	s := &identitySetup{clock: clock.NewFake(time.Now().UTC().Truncate(time.Second)), serverLog: &testenv.SyncBuffer{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.link = testenv.NewLink(t, ln.Addr().String())
	s.env = testenv.Start(t, testenv.WithClock(s.clock), testenv.WithListener(ln), testenv.WithServerURL(s.link.URL()),
		testenv.WithServiceOptions(func(o *ca.ServiceOptions) {
			o.Client = ca.ClientProfile
			o.Client.Lifetime = identityLifetime
		}),
		testenv.WithServerOptions(func(o *server.Options) {
			o.Log = slog.New(slog.NewJSONHandler(s.serverLog, nil))
			o.FeedHeartbeat = 100 * time.Millisecond
		}))
	s.authority = s.env.Authority
	s.upstream = testenv.Upstream(t, gateway.HeaderIdentity)
	return s
}

func (s *identitySetup) token(t *testing.T, id string, ttl time.Duration) string {
	t.Helper()
	return s.env.Token(t, id, ttl)
}

// config writes a gateway config with only an identity section (no cert,
// key, bundle or server URL) and returns its path and the identity dir.
func (s *identitySetup) config(t *testing.T, extra string) (cfgPath, gwDir string) {
	t.Helper()
	base := t.TempDir()
	gwDir = filepath.Join(base, "gw")
	cfgPath = filepath.Join(base, "gateway.yaml")
	y := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
identity:
  dir: gw
  hosts: [localhost, 127.0.0.1]
%srevocation:
  max_staleness: 24h
  max_backoff: 200ms
routes:
  - name: api
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, extra, s.upstream)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, gwDir
}

// start runs `certgate gateway` with the token and returns its address, or
// the error it stopped with before it was ready.
func (s *identitySetup) start(t *testing.T, cfgPath, tok string) (string, error) {
	t.Helper()
	g, err := gatewaytest.Start(t, gatewaytest.Options{Dir: filepath.Dir(cfgPath), File: cfgPath, Clock: s.clock, Token: tok,
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, nil))})
	if err != nil {
		return "", err
	}
	return g.Addr, nil
}

// client issues a 24-hour client certificate (longer than every rotation
// the test makes) and returns a TLS config presenting it that checks the
// gateway's certificate at the fake clock's time.
func (s *identitySetup) client(t *testing.T, path string) (*tls.Config, string) {
	t.Helper()
	p := ca.ClientProfile
	p.Lifetime = 24 * time.Hour
	c := s.env.IssueDirect(t, path, p)
	return &tls.Config{
		RootCAs: s.env.Roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}, Time: s.clock.Now,
		Certificates: []tls.Certificate{c},
	}, ca.SerialHex(c.Leaf.SerialNumber)
}

// feedSerial waits for the server to log a feed connection by the
// certificate serial.
func (s *identitySetup) waitFeed(t *testing.T, serial string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(s.serverLog.String()))
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] == "feed follower connected" && e["serial"] == serial {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the gateway never followed the feed with certificate %s", serial)
}

func readDirLeaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	return testenv.ReadLeaf(t, dir)
}

// keepAlive is an HTTP/1.1 connection the test sends requests on.
type keepAlive struct {
	c  *tls.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string, tc *tls.Config) *keepAlive {
	t.Helper()
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

func (k *keepAlive) get(t *testing.T) {
	t.Helper()
	if code, err := get(k.c, k.br); err != nil || code != 200 {
		t.Fatalf("request on %s: %d %v", k.c.LocalAddr(), code, err)
	}
}

// served is the serial of the certificate the gateway served on k.
func (k *keepAlive) served() string {
	return k.c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestGatewayEnrollsAndRotatesItsOwnCertificate starts a gateway from a
// token and a directory only; it enrolls with its host names, serves,
// follows the feed, and renews its certificate twice while a keep-alive
// connection made before the first renewal keeps working. New connections
// get each new certificate, and the feed, reconnected after the first
// certificate has expired, works with the new one.
func TestGatewayEnrollsAndRotatesItsOwnCertificate(t *testing.T) {
	s := newIdentitySetup(t)
	cfgPath, gwDir := s.config(t, "")
	addr, err := s.start(t, cfgPath, s.token(t, "spiffe://example.org/gateway/gw1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	first := readDirLeaf(t, gwDir)
	if id, _ := identity.FromCertificate(first); id.String() != "spiffe://example.org/gateway/gw1" ||
		!slices.Equal(first.DNSNames, []string{"localhost"}) || len(first.IPAddresses) != 1 || !first.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("enrolled %v for DNS %v IP %v", id, first.DNSNames, first.IPAddresses)
	}
	s.waitFeed(t, first.SerialNumber.Text(16))

	billing, _ := s.client(t, "/svc/billing")
	kept := dialKeepAlive(t, addr, billing)
	kept.get(t)
	if kept.served() != first.SerialNumber.Text(16) {
		t.Fatalf("served %s, enrolled %s", kept.served(), first.SerialNumber.Text(16))
	}

	cur := first
	for n := 1; n <= 2; n++ {
		pollUntil(t, "the gateway's agent to wait for renewal", func() bool { return s.clock.Pending() > 0 })
		// Past the latest renewal point, 0.7 of the lifetime.
		s.clock.AdvanceTo(cur.NotBefore.Add(cur.NotAfter.Sub(cur.NotBefore)*7/10 + time.Second))
		var fresh *keepAlive
		pollUntil(t, fmt.Sprintf("renewal %d to be served", n), func() bool {
			if readDirLeaf(t, gwDir).Equal(cur) {
				return false
			}
			fresh = dialKeepAlive(t, addr, billing)
			return fresh.served() == readDirLeaf(t, gwDir).SerialNumber.Text(16)
		})
		next := readDirLeaf(t, gwDir)
		if !slices.Equal(next.DNSNames, first.DNSNames) || !slices.EqualFunc(next.IPAddresses, first.IPAddresses, net.IP.Equal) {
			t.Fatalf("renewal %d: DNS %v IP %v", n, next.DNSNames, next.IPAddresses)
		}
		fresh.get(t)
		// The connection made before any renewal is the same one, still
		// on the first certificate, and still serves requests.
		kept.get(t)
		if kept.served() != first.SerialNumber.Text(16) {
			t.Fatalf("renewal %d: the keep-alive connection changed certificate", n)
		}
		cur = next
	}
	if now := s.clock.Now(); !now.After(first.NotAfter) {
		t.Fatalf("the first certificate has not expired yet (now %s, not after %s)", now, first.NotAfter)
	}

	// The feed connection was made with the first certificate, which has
	// expired: cut it, and the gateway reconnects with the current one.
	s.link.SetDown(true)
	s.link.SetDown(false)
	s.waitFeed(t, cur.SerialNumber.Text(16))
	mobile, mobileSerial := s.client(t, "/svc/mobile")
	victim := dialKeepAlive(t, addr, mobile)
	victim.get(t)
	closed := watchConn(victim.c)
	waitRead(closed)
	if _, err := s.authority.Revoke(context.Background(), store.RevokeRequest{Serial: mobileSerial, Reason: 1, By: "spiffe://example.org/admin/test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed.done:
	case <-time.After(time.Second):
		t.Fatal("the revoked client's connection is open 1 s after the revocation")
	}
	if err := refused(addr, mobile); err == nil {
		t.Fatal("the revoked client's new handshake succeeded")
	}
	kept.get(t)
}

// pollUntil polls cond for up to 15 s of real time.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A gateway that cannot enroll says why and does not start; one whose
// directory holds a valid certificate starts without a token.
func TestGatewayIdentityStart(t *testing.T) {
	s := newIdentitySetup(t)
	gwID := "spiffe://example.org/gateway/gw1"

	cfgPath, gwDir := s.config(t, "")
	_, err := s.start(t, cfgPath, "")
	if want := "gateway: identity.dir " + gwDir + " holds no certificate: give an enrollment token for spiffe://example.org/gateway/<name> with --token, CERTGATE_TOKEN or identity.token_file"; err == nil || err.Error() != want {
		t.Fatalf("no token:\n got %v\nwant %s", err, want)
	}

	_, err = s.start(t, cfgPath, s.token(t, "spiffe://example.org/svc/billing", time.Hour))
	if want := "gateway: the enrollment token is for spiffe://example.org/svc/billing; a gateway needs a token for spiffe://example.org/gateway/<name>"; err == nil || err.Error() != want {
		t.Fatalf("client token:\n got %v\nwant %s", err, want)
	}

	// The token comes from identity.token_file; the gateway enrolls.
	tok := s.token(t, gwID, time.Hour)
	tokenFile := filepath.Join(filepath.Dir(cfgPath), "gw.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath, gwDir = s.config(t, "  token_file: "+tokenFile+"\n")
	if _, err := s.start(t, cfgPath, ""); err != nil {
		t.Fatal(err)
	}
	enrolled := readDirLeaf(t, gwDir)

	// The same token again, for a gateway with an empty directory.
	reusedCfg, _ := s.config(t, "")
	_, err = s.start(t, reusedCfg, tok)
	if want := "gateway: enrolling " + gwID + ": enroll: server said 403 token_used: token was already used"; err == nil || err.Error() != want {
		t.Fatalf("reused token:\n got %v\nwant %s", err, want)
	}

	// A token past its expiry is refused before it is sent.
	short := s.token(t, gwID, time.Minute)
	s.clock.AdvanceTo(s.clock.Now().Add(2 * time.Minute))
	_, err = s.start(t, reusedCfg, short)
	if want := "gateway: enrolling " + gwID + ": enroll: token expired at "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; ask for a new one") {
		t.Fatalf("expired token:\n got %v\nwant %s...; ask for a new one", err, want)
	}

	// A second gateway process on the enrolled directory needs no token
	// and keeps the certificate.
	cfg2, _ := s.config(t, "")
	y, _ := os.ReadFile(cfg2)
	if err := os.WriteFile(cfg2, []byte(strings.Replace(string(y), "dir: gw", "dir: "+gwDir, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := s.start(t, cfg2, "")
	if err != nil {
		t.Fatal(err)
	}
	billing, _ := s.client(t, "/svc/billing")
	k := dialKeepAlive(t, addr, billing)
	k.get(t)
	if k.served() != enrolled.SerialNumber.Text(16) {
		t.Fatalf("restarted gateway served %s, want the enrolled %s", k.served(), enrolled.SerialNumber.Text(16))
	}

	// Once that certificate has expired, the gateway needs a new token.
	s.clock.AdvanceTo(enrolled.NotAfter.Add(time.Second))
	_, err = s.start(t, cfg2, "")
	if want := "gateway: the certificate in " + gwDir + " expired at " + enrolled.NotAfter.UTC().Format(time.RFC3339) +
		": give an enrollment token for spiffe://example.org/gateway/<name> with --token, CERTGATE_TOKEN or identity.token_file"; err == nil || err.Error() != want {
		t.Fatalf("expired certificate:\n got %v\nwant %s", err, want)
	}
}

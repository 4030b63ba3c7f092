package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/wire"
)

// TestFeedRevocationClosesLiveConnections: through the real server's
// change feed, a revocation closes the client's HTTP/1.1 keep-alive,
// HTTP/2, WebSocket and TCP route connections within 1 s of the revoke
// call's return, and its next handshake is refused, a resumed TLS session
// included; the access log records every cut.
func TestFeedRevocationClosesLiveConnections(t *testing.T) {
	f := newFeedSetup(t, false)
	victim := f.enroll(t, "victim")
	bystander := f.enroll(t, "bystander")

	// A session ticket to resume, proven resumable before the revocation.
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	resumeCfg := f.tlsConfig(victim, "http/1.1")
	resumeCfg.ClientSessionCache = cache
	c1, _, _ := f.openH1(t, resumeCfg)
	c1.Close()
	c2, _, _ := f.openH1(t, resumeCfg)
	if !c2.ConnectionState().DidResume {
		t.Fatal("second connection did not resume: the test would not prove the refusal of a resumed session")
	}
	c2.Close()

	closed := map[string]<-chan struct{}{}
	h1, br, done := f.openH1(t, f.tlsConfig(victim, "http/1.1"))
	waitRead(br)
	closed["http/1.1 keep-alive"] = done
	_ = h1

	h2raw, err := tls.Dial("tcp", f.gwAddr, f.tlsConfig(victim, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2raw.Close() })
	h2w := watchConn(h2raw)
	cc, err := (&http2.Transport{}).NewClientConn(h2w)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://"+f.gwAddr+"/x", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("h2: %v %v", resp, err)
	}
	resp.Body.Close()
	closed["http/2"] = h2w.done

	ws, err := tls.Dial("tcp", f.gwAddr, f.tlsConfig(victim, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	wsw := watchConn(ws)
	wbr := bufio.NewReader(wsw)
	io.WriteString(ws, "GET /ws HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp, err := http.ReadResponse(wbr, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("websocket upgrade: %v %v", resp, err)
	}
	frame := []byte{0x81, 0x84, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2, 'n' ^ 3, 'g' ^ 4}
	ws.Write(frame)
	echo := make([]byte, len(frame))
	if _, err := io.ReadFull(wbr, echo); err != nil || string(echo) != string(frame) {
		t.Fatalf("websocket echo %x %v", echo, err)
	}
	waitRead(wbr)
	closed["websocket"] = wsw.done

	tcpc, err := tls.Dial("tcp", f.tcpAddr, f.tlsConfig(victim))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpc.Close() })
	tcpw := watchConn(tcpc)
	tcpc.Write([]byte("raw"))
	if _, err := io.ReadFull(tcpw, make([]byte, 3)); err != nil {
		t.Fatalf("tcp echo: %v", err)
	}
	waitRead(tcpw)
	closed["tcp route"] = tcpw.done

	_, bbr, bdone := f.openH1(t, f.tlsConfig(bystander, "http/1.1"))
	_ = bbr

	returned := f.revoke(t, victim)
	for kind, ch := range closed {
		select {
		case <-ch:
			t.Logf("%s closed %v after the revoke call returned", kind, time.Since(returned).Round(time.Microsecond))
		case <-time.After(time.Until(returned.Add(time.Second))):
			t.Fatalf("%s connection still open 1s after the revoke call returned", kind)
		}
	}
	select {
	case <-bdone:
		t.Fatal("the bystander's connection was closed")
	default:
	}

	// The next handshake is refused: full, and resuming the session.
	if err := refused(f.gwAddr, f.tlsConfig(victim, "http/1.1")); err == nil || err.Error() != "refused: 403 revoked" {
		t.Fatalf("full handshake after revocation: %v", err)
	}
	if err := refused(f.tcpAddr, f.tlsConfig(victim)); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("TCP route handshake after revocation: %v", err)
	}
	before := cache.offered.Load()
	if err := refused(f.gwAddr, resumeCfg); err == nil || err.Error() != "refused: 403 revoked" {
		t.Fatalf("resumed handshake after revocation: %v", err)
	}
	if cache.offered.Load() != before+1 {
		t.Fatal("the client offered no session to resume")
	}

	// The access log has a cut per connection, with the reason.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := 0
		for _, line := range strings.Split(f.access.String(), "\n") {
			if strings.Contains(line, `"kind":"cut"`) && strings.Contains(line, `"serial":"`+victim.serial+`"`) && strings.Contains(line, `"reason":"revoked"`) {
				n++
			}
		}
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cut entries, want 4:\n%s", n, f.access.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFeedCatchUpAndStaleness: a gateway cut off from the server during
// three revocations enforces all three when it reconnects; past
// max_staleness (by the gateway's clock) it answers 503, and serves again
// when the feed is back.
func TestFeedCatchUpAndStaleness(t *testing.T) {
	f := newFeedSetup(t, true)
	bystander := f.enroll(t, "bystander")
	var victims []client
	type conn struct {
		c    net.Conn
		br   *bufio.Reader
		done <-chan struct{}
	}
	var conns []conn
	for i := range 3 {
		v := f.enroll(t, fmt.Sprintf("victim%d", i))
		victims = append(victims, v)
		c, br, done := f.openH1(t, f.tlsConfig(v, "http/1.1"))
		conns = append(conns, conn{c, br, done})
	}

	f.link.SetDown(true)
	for _, v := range victims {
		f.revoke(t, v)
	}
	// Cut off, the gateway still serves them: it cannot know.
	for i, c := range conns {
		if code, err := get(c.c, c.br); err != nil || code != 200 {
			t.Fatalf("victim %d while the feed is down: %d %v", i, code, err)
		}
	}
	f.link.SetDown(false)
	for i, c := range conns {
		waitRead(c.br)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("victim %d's connection still open 10s after the feed came back", i)
		}
	}
	for i, v := range victims {
		if err := refused(f.gwAddr, f.tlsConfig(v, "http/1.1")); err == nil || err.Error() != "refused: 403 revoked" {
			t.Fatalf("victim %d after catching up: %v", i, err)
		}
	}

	// Staleness, by the gateway's clock.
	bc, bbr, _ := f.openH1(t, f.tlsConfig(bystander, "http/1.1"))
	f.link.SetDown(true)
	f.clock.Advance(time.Minute + time.Second)
	bc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(bc, "GET /x HTTP/1.1\r\nHost: api\r\n\r\n")
	resp, err := http.ReadResponse(bbr, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.HasPrefix(string(body), `{"error":{"code":"revocation_stale","message":"the gateway's revocation data is stale: last updated 1m1s ago, max_staleness is 1m0s;`) {
		t.Fatalf("past max_staleness: %d %s", resp.StatusCode, body)
	}
	if err := refused(f.tcpAddr, f.tlsConfig(bystander)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("TCP route while stale: %v", err)
	}
	f.link.SetDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, err := get(bc, bbr)
		if err != nil {
			t.Fatal(err)
		}
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d 10s after the feed came back", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerStopsWhileFollowed: a server with a follower on its change
// feed stops at once and cleanly; the feed stream, which never goes idle,
// does not hold the graceful shutdown for its whole grace period.
func TestServerStopsWhileFollowed(t *testing.T) {
	e := testenv.Start(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.Roots, Certificates: []tls.Certificate{e.AdminCert}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(e.URL + wire.PathFeed)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"type":"snapshot"`) {
		t.Fatalf("first feed line %q %v", line, err)
	}
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- e.StopServer() }()
	select {
	case err := <-stopped:
		if err != nil || time.Since(start) > 3*time.Second {
			t.Fatalf("server stopped after %v: %v", time.Since(start), err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
}

// TestPullModeClosesConnections: with revocation.mode pull the gateway
// polls GET /v1/revocations (failing over from the dead replica) and still
// closes a revoked client's connection and refuses its handshake.
func TestPullModeClosesConnections(t *testing.T) {
	f := newRevocationSetup(t, false, "pull")
	victim := f.enroll(t, "victim")
	_, br, done := f.openH1(t, f.tlsConfig(victim, "http/1.1"))
	waitRead(br)
	returned := f.revoke(t, victim)
	select {
	case <-done:
		t.Logf("closed %v after the revoke call returned", time.Since(returned))
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open 5 s after the revocation")
	}
	if err := refused(f.gwAddr, f.tlsConfig(victim, "http/1.1")); err == nil || err.Error() != "refused: 403 revoked" {
		t.Fatalf("handshake after revocation: %v", err)
	}
}

// feedSetup is a real server and CA (testenv), a gateway that follows the
// server's change feed through a link the test can cut (after a replica
// that is down: failover is part of every run), an upstream that answers
// HTTP and WebSocket, a TCP route to an echo backend, and an admin client.
type feedSetup struct {
	env     *testenv.Env
	admin   *apiclient.Client
	link    *testenv.Link
	gwAddr  string
	tcpAddr string
	access  *testenv.SyncBuffer
	clock   *clock.Fake // the gateway's, when the setup has a fake clock
}

func newFeedSetup(t *testing.T, fake bool) *feedSetup { return newRevocationSetup(t, fake, "feed") }

func newRevocationSetup(t *testing.T, fake bool, mode string) *feedSetup {
	t.Helper()
	e := testenv.Start(t)
	f := &feedSetup{env: e, admin: e.Client(t, &e.AdminCert), link: testenv.NewLink(t, e.Addr), tcpAddr: testenv.FreeAddr(t)}
	gwDir := t.TempDir()
	e.WriteClientFiles(t, gwDir, e.IssueDirect(t, identity.GatewayPrefix+"gw1", ca.GatewayProfile))
	allow := []string{"spiffe://example.org/svc/*"}
	o := gatewaytest.Options{Dir: gwDir, Config: gatewaytest.Config{
		Bundle: "bundle.pem", Cert: "cert.pem", Key: "key.pem",
		ServerURLs: []string{"https://" + testenv.FreeAddr(t), f.link.URL()}, Refresh: "100ms",
		Mode: mode, MaxStaleness: "1m", MaxBackoff: "300ms",
		Routes:    []gatewaytest.Route{{Name: "api", Upstream: testenv.Upstream(t, gateway.HeaderIdentity), Allow: allow}},
		TCPRoutes: []gatewaytest.TCPRoute{{Name: "echo", Listen: f.tcpAddr, Backend: testenv.EchoBackend(t), Allow: allow}},
	}}
	if fake {
		f.clock = clock.NewFake(time.Now())
		o.Clock = f.clock
	}
	gw := gatewaytest.MustStart(t, o)
	f.gwAddr, f.access = gw.Addr, gw.Access
	return f
}

// enroll issues a client certificate for spiffe://example.org/svc/NAME.
func (f *feedSetup) enroll(t *testing.T, name string) client {
	t.Helper()
	c := f.env.IssueDirect(t, "/svc/"+name, ca.ClientProfile)
	return client{cert: c, serial: c.Leaf.SerialNumber.Text(16), id: "spiffe://example.org/svc/" + name}
}

func (f *feedSetup) tlsConfig(c client, protos ...string) *tls.Config {
	return clientTLS(f.env.Roots, c, protos...)
}

func (f *feedSetup) revoke(t *testing.T, c client) time.Time {
	t.Helper()
	if _, err := f.admin.Revoke(context.Background(), wire.RevokeRequest{Serial: c.serial, Reason: "keyCompromise"}); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// openH1 opens a keep-alive HTTP/1.1 connection and proves it with a
// request; the returned channel closes when the gateway closes it.
func (f *feedSetup) openH1(t *testing.T, tc *tls.Config) (*tls.Conn, *bufio.Reader, <-chan struct{}) {
	t.Helper()
	c, br, done, err := openLive(f.gwAddr, tc)
	if err != nil {
		t.Fatalf("h1: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, br, done
}

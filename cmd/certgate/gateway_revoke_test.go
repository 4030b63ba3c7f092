package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/server"
)

// link is a TCP relay between the gateway and the server that a test can
// cut (every open connection closed, new ones refused) and restore.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); l.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.relay(c)
		}
	}()
	return l
}

func (l *link) url() string { return "https://" + l.ln.Addr().String() }

func (l *link) relay(c net.Conn) {
	b, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	l.conns[c], l.conns[b] = struct{}{}, struct{}{}
	l.mu.Unlock()
	go func() { io.Copy(b, c); b.Close(); c.Close() }()
	io.Copy(c, b)
	c.Close()
	b.Close()
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, b)
	l.mu.Unlock()
}

func (l *link) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
	}
}

// feedSetup is a real server and CA, a gateway that follows the server's
// change feed through a link, an upstream that answers HTTP and WebSocket,
// a TCP echo backend, and an admin client.
type feedSetup struct {
	dir     string
	bundle  *x509.CertPool
	link    *link
	admin   *apiclient.Client
	gwAddr  string
	tcpAddr string
	access  *syncBuffer
	clock   *clock.Fake
}

func newFeedSetup(t *testing.T, fake bool) *feedSetup {
	t.Helper()
	f := &feedSetup{dir: startServer(t), access: &syncBuffer{}}
	srvCfg, err := config.LoadServer(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, roots, _, err := cadir.AdminCredentials(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.bundle = roots
	f.admin, err = apiclient.New(apiclient.Options{ServerURL: srvCfg.Listen.URL, Roots: roots, Certificate: &cert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.admin.CloseIdleConnections)
	f.link = newLink(t, strings.TrimPrefix(srvCfg.Listen.URL, "https://"))

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw) // echo the frames as they come
			return
		}
		fmt.Fprintf(w, "hello %s\n", r.Header.Get(gateway.HeaderIdentity))
	}))
	t.Cleanup(upstream.Close)
	backend := echoBackend(t)

	gwDir := t.TempDir()
	enrollGateway(t, f.dir, gwDir)
	tcpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	f.tcpAddr = tcpLn.Addr().String()
	tcpLn.Close()
	cfgPath := filepath.Join(gwDir, "gateway.yaml")
	// The gateway follows a replica that is down first, then the link:
	// failover is part of every run.
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "https://" + deadLn.Addr().String()
	deadLn.Close()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
bundle: %s
cert: cert.pem
key: key.pem
server:
  urls: [%s, %s]
revocation:
  max_staleness: 1m
  max_backoff: 300ms
routes:
  - name: api
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
tcp_routes:
  - name: echo
    listen: %s
    backend: %s
    allow: ["spiffe://example.org/svc/*"]
`, filepath.Join(f.dir, "bundle.pem"), dead, f.link.url(), upstream.URL, f.tcpAddr, backend)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := gatewayRun{clock: clock.Real{}, firstSet: 10 * time.Second}
	if fake {
		f.clock = clock.NewFake(time.Now())
		run.clock = f.clock
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runGatewayWith(ctx, slog.New(slog.NewTextHandler(testWriter{t}, nil)), cfgPath, streams{out: f.access, err: io.Discard}, run, func(gw *gateway.Gateway) {
			ready <- gw.Addr().String()
		})
	}()
	select {
	case f.gwAddr = <-ready:
	case err := <-done:
		t.Fatalf("gateway: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func echoBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// client is an enrolled client: its TLS certificate and serial.
type client struct {
	cert   tls.Certificate
	serial string
	id     string
}

func (f *feedSetup) enroll(t *testing.T, name string) client {
	t.Helper()
	id := "spiffe://example.org/svc/" + name
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", f.dir, "--identity", id, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), name)
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	cert, err := tls.LoadX509KeyPair(filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, _ := os.ReadFile(filepath.Join(out, "cert.pem"))
	chain, err := pemutil.ParseCertificates(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	return client{cert: cert, serial: chain[0].SerialNumber.Text(16), id: id}
}

func (f *feedSetup) tlsConfig(c client, protos ...string) *tls.Config {
	return &tls.Config{RootCAs: f.bundle, ServerName: "127.0.0.1", Certificates: []tls.Certificate{c.cert}, NextProtos: protos}
}

func (f *feedSetup) revoke(t *testing.T, c client) time.Time {
	t.Helper()
	if _, err := f.admin.Revoke(context.Background(), server.RevokeRequest{Serial: c.serial, Reason: "keyCompromise"}); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// closedConn signals when a read on the connection fails.
type closedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *closedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.done) })
	}
	return n, err
}

func watchConn(c net.Conn) *closedConn { return &closedConn{Conn: c, done: make(chan struct{})} }

// get sends one HTTP/1.1 request on a keep-alive connection.
func get(c net.Conn, br *bufio.Reader) (int, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// openH1 opens a keep-alive HTTP/1.1 connection and proves it with a
// request; the returned channel closes when the gateway closes it.
func (f *feedSetup) openH1(t *testing.T, tc *tls.Config) (*tls.Conn, *bufio.Reader, <-chan struct{}) {
	t.Helper()
	raw, err := tls.Dial("tcp", f.gwAddr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	w := watchConn(raw)
	br := bufio.NewReader(w)
	if code, err := get(raw, br); err != nil || code != 200 {
		t.Fatalf("h1: %d %v", code, err)
	}
	return raw, br, w.done
}

// waitRead starts a reader that makes a close visible on c.
func waitRead(r io.Reader) { go io.Copy(io.Discard, r) }

// refused dials with tc and reports the handshake's refusal (TLS 1.3
// reports a refused client certificate at the first read).
func refused(addr string, tc *tls.Config) error {
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: api\r\n\r\n")
	_, err = c.Read(make([]byte, 1))
	return err
}

// countingCache records whether a client offered a session to resume.
type countingCache struct {
	tls.ClientSessionCache
	offered atomic.Int32
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok {
		c.offered.Add(1)
	}
	return s, ok
}

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
	if err := refused(f.gwAddr, f.tlsConfig(victim, "http/1.1")); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("full handshake after revocation: %v", err)
	}
	if err := refused(f.tcpAddr, f.tlsConfig(victim)); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("TCP route handshake after revocation: %v", err)
	}
	before := cache.offered.Load()
	if err := refused(f.gwAddr, resumeCfg); err == nil || !strings.Contains(err.Error(), "bad certificate") {
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

	f.link.setDown(true)
	for _, v := range victims {
		f.revoke(t, v)
	}
	// Cut off, the gateway still serves them: it cannot know.
	for i, c := range conns {
		if code, err := get(c.c, c.br); err != nil || code != 200 {
			t.Fatalf("victim %d while the feed is down: %d %v", i, code, err)
		}
	}
	f.link.setDown(false)
	for i, c := range conns {
		waitRead(c.br)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("victim %d's connection still open 10s after the feed came back", i)
		}
	}
	for i, v := range victims {
		if err := refused(f.gwAddr, f.tlsConfig(v, "http/1.1")); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Fatalf("victim %d after catching up: %v", i, err)
		}
	}

	// Staleness, by the gateway's clock.
	bc, bbr, _ := f.openH1(t, f.tlsConfig(bystander, "http/1.1"))
	f.link.setDown(true)
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
	f.link.setDown(false)
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
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "", []byte(testPassphrase), func(string) { close(ready) })
	}()
	<-ready
	cert, roots, cfg, err := cadir.AdminCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(cfg.Listen.URL + "/v1/feed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"type":"snapshot"`) {
		t.Fatalf("first feed line %q %v", line, err)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil || time.Since(start) > 3*time.Second {
			t.Fatalf("server stopped after %v: %v", time.Since(start), err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
}

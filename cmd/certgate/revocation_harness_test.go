package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/wire"
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

func newFeedSetup(t *testing.T, fake bool) *feedSetup { return newRevocationSetup(t, fake, "feed") }

func newRevocationSetup(t *testing.T, fake bool, mode string) *feedSetup {
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
  revocation_refresh: 100ms
revocation:
  mode: %s
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
`, filepath.Join(f.dir, "bundle.pem"), dead, f.link.url(), mode, upstream.URL, f.tcpAddr, backend)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := gatewayRun{clock: clock.Real{}, firstSet: 10 * time.Second}
	if fake {
		f.clock = clock.NewFake(time.Now())
		run.clock = f.clock
	}
	if f.gwAddr, err = startGatewayCmd(t, slog.New(slog.NewTextHandler(testWriter{t}, nil)), cfgPath, f.access, run); err != nil {
		t.Fatalf("gateway: %v", err)
	}
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
	out := enrollCLI(t, f.dir, name)
	cert, err := tls.LoadX509KeyPair(filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return client{cert: cert, serial: cert.Leaf.SerialNumber.Text(16), id: id}
}

func (f *feedSetup) tlsConfig(c client, protos ...string) *tls.Config {
	return &tls.Config{RootCAs: f.bundle, ServerName: "127.0.0.1", Certificates: []tls.Certificate{c.cert}, NextProtos: protos}
}

func (f *feedSetup) revoke(t *testing.T, c client) time.Time {
	t.Helper()
	if _, err := f.admin.Revoke(context.Background(), wire.RevokeRequest{Serial: c.serial, Reason: "keyCompromise"}); err != nil {
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

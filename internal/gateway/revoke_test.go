package gateway

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// recMetrics records the revocation events of the Metrics interface.
type recMetrics struct {
	nopMetrics
	mu    sync.Mutex
	cuts  map[string]int
	stale []bool
	pos   int64
}

func (m *recMetrics) ConnectionCut(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cuts == nil {
		m.cuts = map[string]int{}
	}
	m.cuts[reason]++
}

func (m *recMetrics) RevocationStale(stale bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stale = append(m.stale, stale)
}

func (m *recMetrics) RevocationSet(_ int, position int64, _ time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pos = position
}

func (m *recMetrics) snapshot() (map[string]int, []bool, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cuts := map[string]int{}
	for k, v := range m.cuts {
		cuts[k] = v
	}
	return cuts, append([]bool(nil), m.stale...), m.pos
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watchedConn reports when a read on it fails: the peer closed it.
type watchedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func watch(c net.Conn) *watchedConn { return &watchedConn{Conn: c, closed: make(chan struct{})} }

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.once.Do(func() { close(w.closed) })
	}
	return n, err
}

// liveConns is one connection of each kind a client can hold open: an
// HTTP/1.1 keep-alive connection, an HTTP/2 connection, a WebSocket and a
// TCP route connection, each proven to work.
type liveConns struct {
	closed map[string]<-chan struct{}
}

func tcpEchoBackend(t *testing.T) string {
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

func openLiveConns(t *testing.T, e *env, leaf *testca.Leaf) *liveConns {
	t.Helper()
	lc := &liveConns{closed: map[string]<-chan struct{}{}}
	readers := map[string]func(){}

	// HTTP/1.1 keep-alive: one request answered, the connection kept.
	h1 := e.dial(leaf)
	io.WriteString(h1, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(h1)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("h1: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	h1w := watch(h1)
	lc.closed["http/1.1"] = h1w.closed
	readers["http/1.1"] = func() { h1w.SetReadDeadline(time.Now().Add(10 * time.Second)); io.Copy(io.Discard, h1w) }

	// HTTP/2: the client's transport reads the connection in its own
	// goroutine, and sees the close.
	tc := e.tlsConfig(leaf)
	tc.NextProtos = []string{"h2"}
	h2raw, err := tls.Dial("tcp", e.addr(), tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2raw.Close() })
	h2w := watch(h2raw)
	cc, err := (&http2.Transport{}).NewClientConn(h2w)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.url("/x"), nil)
	resp, err = cc.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("h2: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lc.closed["h2"] = h2w.closed

	// WebSocket: upgraded and echoing.
	ws := e.dial(leaf)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(ws, "GET /ws HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	wsw := watch(ws)
	wbr := bufio.NewReader(wsw)
	resp, err = http.ReadResponse(wbr, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("ws upgrade: %v %v", resp, err)
	}
	wsWrite(ws, 1, []byte("ping"), true)
	if _, msg, err := wsRead(wbr); err != nil || string(msg) != "ping" {
		t.Fatalf("ws echo %q %v", msg, err)
	}
	lc.closed["websocket"] = wsw.closed
	readers["websocket"] = func() { ws.SetReadDeadline(time.Now().Add(10 * time.Second)); io.Copy(io.Discard, wbr) }

	// TCP route: echoing raw bytes.
	tcpc, err := tls.Dial("tcp", e.gw.TCPAddr("echo").String(), e.tlsConfig(leaf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpc.Close() })
	tcpc.Write([]byte("raw"))
	got := make([]byte, 3)
	if _, err := io.ReadFull(tcpc, got); err != nil || string(got) != "raw" {
		t.Fatalf("tcp echo %q %v", got, err)
	}
	tcpw := watch(tcpc)
	lc.closed["tcp"] = tcpw.closed
	readers["tcp"] = func() { tcpc.SetReadDeadline(time.Now().Add(10 * time.Second)); io.Copy(io.Discard, tcpw) }

	for _, r := range readers {
		go r()
	}
	return lc
}

// wait waits for every connection to be closed and returns how long each
// took, failing past limit.
func (lc *liveConns) wait(t *testing.T, since time.Time, limit time.Duration) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	for kind, ch := range lc.closed {
		select {
		case <-ch:
			took[kind] = time.Since(since)
		case <-time.After(limit - time.Since(since)):
			t.Fatalf("%s connection still open %s after the revocation", kind, limit)
		}
	}
	return took
}

func tcpRouteYAML(t *testing.T) string {
	return `
tcp_routes:
  - name: echo
    listen: 127.0.0.1:0
    backend: ` + tcpEchoBackend(t) + `
    allow: ["spiffe://example.org/svc/*"]
`
}

// TestRevocationCutsEveryConnectionKind: a revocation update closes the
// revoked certificate's HTTP/1.1, HTTP/2, WebSocket and TCP connections at
// once, logs each cut, counts them, and leaves another client alone.
func TestRevocationCutsEveryConnectionKind(t *testing.T) {
	m := &recMetrics{}
	e := newEnv(t, withYAML(tcpRouteYAML(t)), withStaleness(time.Minute, m, io.Discard))
	e.revoked.Update(revocation.NewSet(1, e.clock.Now()))
	victim := e.ca.Issue(t, withSvc("victim"))
	bystander := e.ca.Issue(t, withSvc("bystander"))
	v := openLiveConns(t, e, victim)
	b := openLiveConns(t, e, bystander)

	start := time.Now()
	e.revoked.Update(e.revoked.Load().With(2, e.clock.Now(), revocation.SerialOf(victim.Cert)))
	took := v.wait(t, start, time.Second)
	t.Logf("closed after %v", took)
	for kind, ch := range b.closed {
		select {
		case <-ch:
			t.Fatalf("bystander's %s connection closed", kind)
		default:
		}
	}
	serial := revocation.SerialOf(victim.Cert)
	cuts := map[string]int{}
	for _, l := range e.logLines() {
		if l["kind"] == KindCut {
			if l["serial"] != serial || l["reason"] != "revoked" || l["identity"] != "spiffe://example.org/svc/victim" || l["decision"] != "deny" {
				t.Fatalf("cut entry %v", l)
			}
			cuts[fmt.Sprint(l["route"])]++
		}
	}
	// Two HTTP connections without a route, the WebSocket of route api
	// and the TCP connection of route echo.
	if cuts["<nil>"] != 2 || cuts["api"] != 1 || cuts["echo"] != 1 {
		t.Fatalf("cut entries by route: %v\n%s", cuts, e.logBuf.String())
	}
	if c, _, pos := m.snapshot(); c["revoked"] != 4 || pos != 2 {
		t.Fatalf("metrics: cuts %v, position %d", c, pos)
	}
	// The next connection is refused: answered 403 on the HTTP listener,
	// a TLS alert on the TCP route's.
	e.refusedWith(victim, false, ReasonRevoked)
	e.refusedWith(victim, true, ReasonRevoked)
	c, err := tls.Dial("tcp", e.gw.TCPAddr("echo").String(), e.tlsConfig(victim))
	if err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("TCP route handshake of the revoked certificate: %v", err)
	}
	if n := e.gw.CloseBySerial(serial); n != 0 {
		t.Fatalf("CloseBySerial found %d more connections", n)
	}
}

// TestStaleRevocationDataFailsClosed: within max_staleness the known set
// is enforced; past it every request gets 503 with a JSON reason, new TCP
// connections are refused and tunnels cut, logged once; an update brings
// the gateway back.
func TestStaleRevocationDataFailsClosed(t *testing.T) {
	m := &recMetrics{}
	opLog := &lockedBuffer{}
	const maxStale = 5 * time.Minute
	e := newEnv(t, withYAML(tcpRouteYAML(t)), withStaleness(maxStale, m, opLog))
	leaf := e.ca.Issue(t, withSvc("a"))
	revoked := e.ca.Issue(t, withSvc("revoked"))

	// Never updated: 503 from the first request.
	c := e.client(leaf, false)
	status, body := getJSON(t, c, mustReq(t, e.url("/x")))
	if status != 503 || body["error"].(map[string]any)["code"] != "revocation_stale" ||
		body["error"].(map[string]any)["message"] != "the gateway has received no revocation data yet and refuses requests until it has (max_staleness 5m0s)" {
		t.Fatalf("before any data: %d %v", status, body)
	}

	e.revoked.Update(revocation.NewSet(3, e.clock.Now(), revocation.SerialOf(revoked.Cert)))
	if status, _ := getJSON(t, c, mustReq(t, e.url("/x"))); status != 200 {
		t.Fatalf("with current data: %d", status)
	}
	// Stale but within the limit: still serving, still enforcing.
	e.clock.Advance(maxStale - time.Second)
	if status, _ := getJSON(t, c, mustReq(t, e.url("/x"))); status != 200 {
		t.Fatalf("within max_staleness: %d", status)
	}
	e.refusedWith(revoked, false, ReasonRevoked)
	tunnels := openLiveConns(t, e, leaf)
	delete(tunnels.closed, "http/1.1") // these two get 503 per request instead
	delete(tunnels.closed, "h2")

	// Past the limit.
	e.clock.Advance(2 * time.Second)
	want := `{"error":{"code":"revocation_stale","message":"the gateway's revocation data is stale: last updated 5m1s ago, max_staleness is 5m0s; requests are refused until the revocation source is back"}}`
	for _, h2 := range []bool{false, true} {
		resp, err := e.client(leaf, h2).Get(e.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || string(b) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("h2=%v past max_staleness: %d %s", h2, resp.StatusCode, b)
		}
	}
	// A keep-alive connection gets 503 and stays usable.
	for range 3 {
		if status, _ := getJSON(t, c, mustReq(t, e.url("/x"))); status != 503 {
			t.Fatalf("keep-alive past max_staleness: %d", status)
		}
	}
	// Tunnels are cut; a new TCP connection is refused before the backend.
	tunnels.wait(t, time.Now(), 2*time.Second)
	tcpc, err := tls.Dial("tcp", e.gw.TCPAddr("echo").String(), e.tlsConfig(leaf))
	if err != nil {
		t.Fatal(err)
	}
	tcpc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := tcpc.Read(make([]byte, 1)); err == nil {
		t.Fatalf("new TCP connection read %d bytes while stale", n)
	}
	tcpc.Close()
	e.waitLog(func(l map[string]any) bool { return l["kind"] == "tcp" && l["reason"] == "revocation_stale" })
	e.waitLog(func(l map[string]any) bool {
		return l["kind"] == KindCut && l["reason"] == "revocation_stale" && l["route"] == "echo"
	})
	e.waitLog(func(l map[string]any) bool {
		return l["kind"] == KindCut && l["reason"] == "revocation_stale" && l["route"] == "api"
	})
	e.waitLog(func(l map[string]any) bool { return l["status"] == float64(503) && l["reason"] == "revocation_stale" })
	if !e.gw.Stale() {
		t.Fatal("Stale() = false")
	}

	// The source is back: serving again.
	e.revoked.Update(e.revoked.Load().Touched(e.clock.Now()))
	if status, _ := getJSON(t, c, mustReq(t, e.url("/x"))); status != 200 {
		t.Fatalf("after the update: %d", status)
	}
	if e.gw.Stale() {
		t.Fatal("Stale() = true after the update")
	}
	log := opLog.String()
	if n := strings.Count(log, "revocation data is stale: refusing every request with 503"); n != 1 {
		t.Fatalf("%d stale log lines:\n%s", n, log)
	}
	if n := strings.Count(log, "no revocation data received yet"); n != 1 {
		t.Fatalf("%d no-data log lines:\n%s", n, log)
	}
	if n := strings.Count(log, "revocation data is current again"); n != 2 {
		t.Fatalf("%d recovery log lines:\n%s", n, log)
	}
	cuts, stale, _ := m.snapshot()
	if fmt.Sprint(stale) != "[true false true false]" || cuts["revocation_stale"] != 2 {
		t.Fatalf("metrics: stale %v, cuts %v", stale, cuts)
	}
}

func mustReq(t *testing.T, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

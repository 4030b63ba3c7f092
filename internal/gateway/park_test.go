package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// parkMetrics keeps the parked connections gauge and counts panics.
type parkMetrics struct {
	nopMetrics
	parked atomic.Int64
	panics atomic.Int64
}

func (m *parkMetrics) ParkedConnections(d int) { m.parked.Add(int64(d)) }
func (m *parkMetrics) Panic(string)            { m.panics.Add(1) }
func (m *parkMetrics) Request(route string, _ int, _ string, _, _ time.Duration) {
	if route == "boom" {
		panic("injected: request on route boom")
	}
}

const parkRoutes = `
routes:
  - name: boom
    path_prefix: /boom
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
  - name: api
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
`

func parkEnv(t *testing.T) (*env, *parkMetrics) {
	t.Helper()
	if !canPark {
		t.Skip("no poller in this build: connections wait on goroutines")
	}
	m := &parkMetrics{}
	return newEnv(t, withMetrics(m, io.Discard), withRoutes(parkRoutes)), m
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) parked() int { return e.gw.poller.Load().count() }

// h1conn is a client's HTTP/1.1 keep-alive connection.
type h1conn struct {
	t  *testing.T
	c  *tls.Conn
	br *bufio.Reader
}

func (e *env) h1conn(t *testing.T, leaf *testca.Leaf) *h1conn {
	c := e.dial(leaf)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &h1conn{t: t, c: c, br: bufio.NewReader(c)}
}

// get reads one answer and checks that it is the upstream's for path.
func (h *h1conn) get(path string) error {
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"path":"`+path+`"`) {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return nil
}

func (h *h1conn) do(path string) error {
	if _, err := io.WriteString(h.c, "GET "+path+" HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return err
	}
	return h.get(path)
}

// TestParkedConnectionWakes: a parked connection holds no goroutine and
// serves whatever wakes it: a request, pipelined requests in one write
// (one TLS record; crypto/tls returns the first byte and keeps the rest),
// more pipelined requests than the session's reader holds (several
// records), a request whose first byte comes alone; it parks again after
// each.
func TestParkedConnectionWakes(t *testing.T) {
	e, m := parkEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	h := e.h1conn(t, leaf)
	if err := h.do("/first"); err != nil {
		t.Fatal(err)
	}
	park := func(what string) {
		t.Helper()
		waitFor(t, what+": parked", func() bool { return e.parked() == 1 })
		if m.parked.Load() != 1 {
			t.Fatalf("%s: parked gauge %d", what, m.parked.Load())
		}
	}
	park("after a request")

	if err := h.do("/woken"); err != nil {
		t.Fatal(err)
	}
	park("after the wake")

	io.WriteString(h.c, "GET /p1 HTTP/1.1\r\nHost: api\r\n\r\nGET /p2 HTTP/1.1\r\nHost: api\r\n\r\nGET /p3 HTTP/1.1\r\nHost: api\r\n\r\n")
	for _, p := range []string{"/p1", "/p2", "/p3"} {
		if err := h.get(p); err != nil {
			t.Fatal(err)
		}
	}
	park("after pipelined requests")

	// 200 requests of ~150 bytes: 30 KiB in one write, two TLS records
	// and the session's 8 KiB reader filled several times.
	var b strings.Builder
	pad := strings.Repeat("x", 100)
	for i := range 200 {
		fmt.Fprintf(&b, "GET /many/%d HTTP/1.1\r\nHost: api\r\nX-Pad: %s\r\n\r\n", i, pad)
	}
	go io.WriteString(h.c, b.String())
	for i := range 200 {
		if err := h.get(fmt.Sprintf("/many/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	park("after 200 pipelined requests")

	io.WriteString(h.c, "G")
	time.Sleep(50 * time.Millisecond) // read_header is 300ms
	io.WriteString(h.c, "ET /split HTTP/1.1\r\nHost: api\r\n\r\n")
	if err := h.get("/split"); err != nil {
		t.Fatal(err)
	}
	park("after a split request")
	if n := e.gw.Connections(); n != 1 {
		t.Fatalf("connections %d", n)
	}
}

// TestParkedConnectionIdleTimeout: the idle timeout, counted from the last
// request, closes a parked connection; a client that closes is forgotten.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	e, m := parkEnv(t)
	cfg := strings.Replace(readFile(t, e.cfgPath), "timeouts:\n", "timeouts:\n  idle: 3s\n", 1)
	writeFile(e.cfgPath, cfg)
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	leaf := e.ca.Issue(t, withSvc("a"))
	h := e.h1conn(t, leaf)
	gone := e.h1conn(t, leaf)
	// Before the request: the gateway counts from when it has answered.
	last := time.Now()
	for _, c := range []*h1conn{h, gone} {
		if err := c.do("/x"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two parked", func() bool { return e.parked() == 2 })
	gone.c.Close()
	waitFor(t, "the closed one forgotten", func() bool { return e.parked() == 1 && e.gw.Connections() == 1 })

	if _, err := h.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want the gateway to close it (EOF)", err)
	}
	if took := time.Since(last); took < 3*time.Second || took > 5*time.Second {
		t.Fatalf("closed %v after the last request, idle timeout 3s", took)
	}
	waitFor(t, "no connection", func() bool { return e.gw.Connections() == 0 && e.parked() == 0 && m.parked.Load() == 0 })
}

// TestParkedConnectionRevoked: a revocation cuts a parked connection at
// once, logs the cut, and forgets it.
func TestParkedConnectionRevoked(t *testing.T) {
	e, m := parkEnv(t)
	e.revoked.Update(revocation.NewSet(1, e.clock.Now()))
	victim := e.ca.Issue(t, withSvc("victim"))
	bystander := e.ca.Issue(t, withSvc("bystander"))
	v, b := e.h1conn(t, victim), e.h1conn(t, bystander)
	for _, c := range []*h1conn{v, b} {
		if err := c.do("/x"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two parked", func() bool { return e.parked() == 2 })
	serial := revocation.SerialOf(victim.Cert)
	start := time.Now()
	e.revoked.Update(e.revoked.Load().With(2, e.clock.Now(), serial))
	v.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := v.br.ReadByte(); err == nil {
		t.Fatal("the revoked certificate's parked connection still reads")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("cut after %v", took)
	}
	waitFor(t, "the cut one forgotten", func() bool { return e.parked() == 1 && e.gw.Connections() == 1 && m.parked.Load() == 1 })
	e.waitLog(func(l map[string]any) bool {
		return l["kind"] == KindCut && l["serial"] == serial && l["reason"] == "revoked"
	})
	if err := b.do("/still"); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	if n := e.gw.CloseBySerial(serial); n != 0 {
		t.Fatalf("CloseBySerial found %d more", n)
	}
}

// TestParkedConnectionsShutdown: Close closes parked connections and
// returns.
func TestParkedConnectionsShutdown(t *testing.T) {
	e, m := parkEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	var hs []*h1conn
	for range 5 {
		h := e.h1conn(t, leaf)
		if err := h.do("/x"); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	waitFor(t, "five parked", func() bool { return e.parked() == 5 })
	done := make(chan struct{})
	go func() { e.gw.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for i, h := range hs {
		h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := h.br.ReadByte(); err != io.EOF {
			t.Fatalf("connection %d after Close: %v, want EOF", i, err)
		}
	}
	if n := e.gw.Connections(); n != 0 || e.parked() != 0 || m.parked.Load() != 0 {
		t.Fatalf("after Close: %d connections, %d parked, gauge %d", n, e.parked(), m.parked.Load())
	}
}

// TestParkedConnectionPanic: a panic while serving a woken connection is
// recovered and counted; only that connection is lost.
func TestParkedConnectionPanic(t *testing.T) {
	e, m := parkEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	h := e.h1conn(t, leaf)
	if err := h.do("/x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "parked", func() bool { return e.parked() == 1 })
	io.WriteString(h.c, "GET /boom HTTP/1.1\r\nHost: api\r\n\r\n")
	waitFor(t, "the panic counted", func() bool { return m.panics.Load() == 1 })
	waitFor(t, "the connection forgotten", func() bool { return e.gw.Connections() == 0 && e.parked() == 0 })
	if err := e.h1conn(t, leaf).do("/after"); err != nil {
		t.Fatal(err)
	}
}

// TestManyParkedConnections: 300 connections park without a goroutine
// each and are all served again; half of them close and 150 new ones
// (reusing the gateway's file descriptor numbers) park and serve too.
func TestManyParkedConnections(t *testing.T) {
	e, m := parkEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	const n = 300
	before := goruntime.NumGoroutine()
	open := func(k int) []*h1conn {
		out := make([]*h1conn, k)
		var wg sync.WaitGroup
		errs := make(chan error, k)
		for i := range out {
			out[i] = e.h1conn(t, leaf)
			wg.Go(func() {
				if err := out[i].do(fmt.Sprintf("/open/%d", i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return out
	}
	serveAll := func(hs []*h1conn) {
		var wg sync.WaitGroup
		errs := make(chan error, len(hs))
		for i, h := range hs {
			wg.Go(func() {
				if err := h.do(fmt.Sprintf("/again/%d", i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	hs := open(n)
	waitFor(t, "all parked", func() bool { return e.parked() == n })
	// The client side of each connection is in this process too, without
	// a reading goroutine: the gateway's side holds none either.
	if g := goruntime.NumGoroutine() - before; g > n/10 {
		t.Fatalf("%d more goroutines with %d connections parked", g, n)
	}
	serveAll(hs)
	waitFor(t, "all parked again", func() bool { return e.parked() == n })

	for _, h := range hs[:n/2] {
		h.c.Close()
	}
	waitFor(t, "the closed ones forgotten", func() bool { return e.gw.Connections() == n/2 && e.parked() == n/2 })
	hs = append(hs[n/2:], open(n/2)...)
	waitFor(t, "all parked once more", func() bool { return e.parked() == n })
	serveAll(hs)
	waitFor(t, "all parked at the end", func() bool { return e.parked() == n && m.parked.Load() == n })
}

// TestParkSoonerUnderPressure: a connection waits parkAfter for its next
// request on its goroutine, but only parkAfterBusy once parkPressure
// connections wait on goroutines (h1proxy.go); what a client sees does
// not change, and the count of waiting connections goes back to zero.
func TestParkSoonerUnderPressure(t *testing.T) {
	e, _ := parkEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))

	// One connection, the default pressure: it waits the whole parkAfter.
	calm := e.h1conn(t, leaf)
	if err := calm.do("/calm"); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	time.Sleep(parkAfter / 2)
	if e.parked() != 0 {
		t.Fatalf("parked %v after its request, before parkAfter (%v)", time.Since(answered), parkAfter)
	}
	waitFor(t, "the calm connection parked", func() bool { return e.parked() == 1 })

	// A pressure of 0: every wait is parkAfterBusy.
	e.gw.parkPressure.Store(0)
	h := e.h1conn(t, leaf)
	if err := h.do("/busy"); err != nil {
		t.Fatal(err)
	}
	answered = time.Now()
	waitFor(t, "the connection parked", func() bool { return e.parked() == 2 })
	if d := time.Since(answered); d >= parkAfter*3/4 {
		t.Fatalf("parked %v after its request under pressure, want about %v", d, parkAfterBusy)
	}
	// Keep-alive requests with pauses shorter and longer than
	// parkAfterBusy (served on the goroutine, or woken from the poller),
	// pipelined requests, a request whose first byte comes alone.
	for i := range 12 {
		if err := h.do(fmt.Sprintf("/ka/%d", i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%4) * parkAfterBusy)
	}
	io.WriteString(h.c, "GET /p1 HTTP/1.1\r\nHost: api\r\n\r\nGET /p2 HTTP/1.1\r\nHost: api\r\n\r\n")
	for _, p := range []string{"/p1", "/p2"} {
		if err := h.get(p); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(h.c, "G")
	time.Sleep(3 * parkAfterBusy) // parked meanwhile; read_header is 300ms
	io.WriteString(h.c, "ET /split HTTP/1.1\r\nHost: api\r\n\r\n")
	if err := h.get("/split"); err != nil {
		t.Fatal(err)
	}
	// Many connections at once, each with a few requests.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		c := e.h1conn(t, leaf)
		wg.Go(func() {
			for j := range 5 {
				if err := c.do(fmt.Sprintf("/many/%d/%d", i, j)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "all parked", func() bool { return e.parked() == 42 })
	if n := e.gw.waiting.Load(); n != 0 {
		t.Fatalf("%d connections counted as waiting on goroutines, all parked", n)
	}
	if err := calm.do("/calm-again"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all parked again", func() bool { return e.parked() == 42 && e.gw.waiting.Load() == 0 })
}

package gateway

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// panickyMetrics panics where the test says, as a bug anywhere in a
// connection's life would, and counts the panics the gateway reports.
type panickyMetrics struct {
	nopMetrics
	mu     sync.Mutex
	panics map[string]int
}

func (m *panickyMetrics) Request(route string, status int, _ string, _, _ time.Duration) {
	if route == "boom" {
		panic("injected: request on route boom")
	}
}

func (m *panickyMetrics) Handshake(result string) {
	if result == ReasonNoCertificate.String() {
		panic("injected: handshake without a certificate")
	}
}

func (m *panickyMetrics) Panic(where string) {
	m.mu.Lock()
	m.panics[where]++
	m.mu.Unlock()
}

func (m *panickyMetrics) count(where string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.panics[where]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestPanicsAreRecovered: a panic in a handshake, in an HTTP/1.1 request
// and in an HTTP/2 request is logged with its stack and counted, only its
// connection (HTTP/1.1) or stream (HTTP/2) is lost, and the gateway goes
// on serving.
func TestPanicsAreRecovered(t *testing.T) {
	m := &panickyMetrics{panics: map[string]int{}}
	var oplog syncBuffer
	e := newEnv(t, withMetrics(m, &oplog), withRoutes(`
routes:
  - name: boom
    path_prefix: /boom
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
  - name: api
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
`))
	leaf := e.ca.Issue(t, withSvc("a"))
	ok := func(h2 bool) {
		t.Helper()
		resp, err := e.client(leaf, h2).Get(e.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}

	// A handshake.
	e.handshakeRefused(nil, 0)
	ok(false)

	// An HTTP/1.1 request (the injected panic comes after the response
	// was written): the connection is closed.
	tc := e.tlsConfig(leaf)
	tc.NextProtos = []string{"http/1.1"}
	s := &h1Sender{e: e, tc: tc}
	defer s.close()
	s.do("/boom")
	if status, _, err := s.do("/x"); err == nil {
		t.Fatalf("the connection whose request panicked served another: %d", status)
	}
	ok(false)

	// An HTTP/2 request: the stream is reset, the connection serves on.
	c := e.client(leaf, true)
	if resp, err := c.Get(e.url("/boom")); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("the HTTP/2 stream whose request panicked was not reset")
		}
	}
	resp, err := c.Get(e.url("/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("after the reset stream: %s %s", resp.Proto, resp.Status)
	}

	deadline := time.Now().Add(5 * time.Second)
	for m.count(panicConnection) < 2 || m.count(panicHTTP2Request) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("panics counted: %v", m.panics)
		}
		time.Sleep(10 * time.Millisecond)
	}
	log := oplog.String()
	for _, want := range []string{
		"panic recovered; the gateway keeps serving", "where=connection", "injected: handshake without a certificate",
		"injected: request on route boom", "where=http2_request", "goroutine ", "recover_test.go",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("operational log lacks %q", want)
		}
	}
}

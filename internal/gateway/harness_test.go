package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

const td = "example.org"

// env is a gateway on 127.0.0.1 in front of a recording upstream, with a
// test CA and an access log the test can read.
type env struct {
	t        testing.TB
	ca       *testca.CA
	dir      string
	cfgPath  string
	gw       *Gateway
	upstream *httptest.Server
	hits     atomic.Int32
	clock    *clock.Fake
	revoked  *revocation.Holder

	logMu  sync.Mutex
	logBuf bytes.Buffer
	access *accesslog.Logger

	// last request the upstream saw
	mu   sync.Mutex
	last *http.Request
}

type envOption func(*envOpts)

type envOpts struct {
	yamlExtra string // appended to the routes section
	routes    string // replaces the default routes
	clock     *clock.Fake
	ca        *testca.CA
	quiet     bool // no operational log, access log discarded
	maxStale  time.Duration
	metrics   Metrics
	opLog     io.Writer // also receives the operational log
}

// withStaleness fails the gateway closed past d, with metrics and the
// operational log (text) going to m and w as well.
func withStaleness(d time.Duration, m Metrics, w io.Writer) envOption {
	return func(o *envOpts) { o.maxStale, o.metrics, o.opLog = d, m, w }
}

func quiet() envOption { return func(o *envOpts) { o.quiet = true } }

func withRoutes(r string) envOption       { return func(o *envOpts) { o.routes = r } }
func withClock(c *clock.Fake) envOption   { return func(o *envOpts) { o.clock = c } }
func withCA(ca *testca.CA) envOption      { return func(o *envOpts) { o.ca = ca } }
func withYAML(extra string) envOption     { return func(o *envOpts) { o.yamlExtra = extra } }
func (e *env) logWriter() io.Writer       { return lockedWriter{e} }
func (e *env) url(path string) string     { return "https://" + e.gw.Addr().String() + path }
func (e *env) addr() string               { return e.gw.Addr().String() }
func (e *env) lastRequest() *http.Request { e.mu.Lock(); defer e.mu.Unlock(); return e.last }

type lockedWriter struct{ e *env }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.logMu.Lock()
	defer w.e.logMu.Unlock()
	return w.e.logBuf.Write(p)
}

const defaultRoutes = `
routes:
  - name: admin
    path_prefix: /admin
    upstream: UPSTREAM
    allow: ["spiffe://example.org/admin/alice"]
  - name: api
    path_prefix: /
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
`

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var o envOpts
	for _, f := range opts {
		f(&o)
	}
	e := &env{t: t, dir: t.TempDir(), clock: o.clock, ca: o.ca}
	if e.ca == nil {
		e.ca = testca.New(t, td)
	}
	if e.clock == nil {
		e.clock = clock.NewFake(time.Now())
	}
	e.upstream = httptest.NewServer(http.HandlerFunc(e.serveUpstream))
	t.Cleanup(e.upstream.Close)
	e.ca.WriteBundle(t, e.dir)
	gwLeaf := e.ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw1"))
	gwLeaf.WriteFiles(t, e.dir, "gateway")
	routes := o.routes
	if routes == "" {
		routes = defaultRoutes
	}
	e.cfgPath = filepath.Join(e.dir, "gateway.yaml")
	e.writeConfig(routes + o.yamlExtra)
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.access = accesslog.New(e.logWriter())
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.quiet {
		e.access = accesslog.New(io.Discard)
		logger = slog.New(slog.DiscardHandler)
	}
	if o.opLog != nil {
		logger = slog.New(slog.NewTextHandler(io.MultiWriter(testLogWriter{t}, o.opLog), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.revoked = revocation.NewHolder()
	e.gw, err = New(cfg, Options{
		Clock: e.clock, AccessLog: e.access, Revocations: e.revoked, SweepInterval: 10 * time.Millisecond,
		Logger: logger, MaxStaleness: o.maxStale, Metrics: o.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		e.gw.Close()
		e.access.Close()
	})
	return e
}

func (e *env) writeConfig(routes string) {
	e.t.Helper()
	y := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
bundle: bundle.pem
cert: gateway.pem
key: gateway.key
timeouts:
  read_header: 300ms
  upstream_header: 700ms
max_header_bytes: 4096
%s`, strings.ReplaceAll(routes, "UPSTREAM", e.upstream.URL))
	if err := os.WriteFile(e.cfgPath, []byte(y), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// serveUpstream records the request and answers with what it saw.
func (e *env) serveUpstream(w http.ResponseWriter, r *http.Request) {
	e.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.last = r.Clone(context.Background())
	e.mu.Unlock()
	switch {
	case r.URL.Path == "/sse":
		serveSSE(w, r)
		return
	case r.URL.Path == "/ws":
		serveWebSocketEcho(w, r)
		return
	case r.URL.Path == "/slow":
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	case r.URL.Path == "/status/204":
		w.WriteHeader(204)
		return
	case r.URL.Path == "/eof":
		// No Content-Length, no chunking: the body ends when the
		// connection closes.
		w.Header().Set("Connection", "close")
		hj, _ := w.(http.Hijacker)
		c, bw, _ := hj.Hijack()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
		bw.Flush()
		c.Close()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"method":   r.Method,
		"path":     r.URL.RequestURI(),
		"host":     r.Host,
		"identity": r.Header.Values(HeaderIdentity),
		"serial":   r.Header.Get(HeaderSerial),
		"body":     string(body),
		"proto":    r.Proto,
	})
}

func serveSSE(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	for i := range 3 {
		fmt.Fprintf(w, "data: event %d\n\n", i)
		rc.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// client returns an HTTP client presenting leaf (nil: no certificate).
func (e *env) client(leaf *testca.Leaf, h2 bool) *http.Client {
	tc := e.tlsConfig(leaf)
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (e *env) tlsConfig(leaf *testca.Leaf) *tls.Config {
	tc := &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost"}
	if leaf != nil {
		tc.Certificates = []tls.Certificate{leaf.TLSCertificate()}
	}
	return tc
}

// dial opens a raw TLS connection to the gateway, forcing HTTP/1.1.
func (e *env) dial(leaf *testca.Leaf) *tls.Conn {
	e.t.Helper()
	tc := e.tlsConfig(leaf)
	tc.NextProtos = []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr(), tc)
	if err != nil {
		e.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	e.t.Cleanup(func() { c.Close() })
	return c
}

// logLines flushes the access log and returns its entries.
func (e *env) logLines() []map[string]any {
	e.t.Helper()
	e.access.Flush()
	e.logMu.Lock()
	defer e.logMu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.logBuf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			e.t.Fatalf("bad access log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitLog waits for an access log entry for which match is true.
func (e *env) waitLog(match func(map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range e.logLines() {
			if match(l) {
				return l
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no access log entry matched; log:\n%s", e.logBuf.String())
	return nil
}

func getJSON(t *testing.T, c *http.Client, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("status %d, body %q: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, m
}

// rawRequest writes a raw request on a new connection and returns the
// status line and whether the gateway closed the connection after.
func (e *env) rawRequest(leaf *testca.Leaf, raw string) (statusLine string, closed bool) {
	e.t.Helper()
	c := e.dial(leaf)
	if _, err := io.WriteString(c, raw); err != nil {
		e.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		e.t.Fatalf("reading response to %q: %v", raw, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	return resp.Status, err == io.EOF
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// pythonWith returns a python3 that imports every module given: Debian's
// /usr/bin/python3 (where CI installs python3-requests, python3-httpx and
// python3-h2) first, then the one on PATH. Where there is none the test is
// skipped, or fails under CERTGATE_REQUIRE_PEERS=1.
func pythonWith(t testing.TB, modules ...string) string {
	t.Helper()
	imp := "import " + strings.Join(append([]string{"sys"}, modules...), ", ")
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", imp).Run() == nil {
			return p
		}
	}
	if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
		t.Fatalf("no python3 with %v (install python3-requests python3-httpx python3-h2; CERTGATE_REQUIRE_PEERS=1)", modules)
	}
	t.Skipf("no python3 with %v: skipping (install the Debian packages python3-requests python3-httpx python3-h2)", modules)
	return ""
}

// withMetrics sends the gateway's metrics to m and its operational log to
// w as well.
func withMetrics(m Metrics, w io.Writer) envOption {
	return func(o *envOpts) { o.metrics, o.opLog = m, w }
}

// refusedWith does one GET as leaf (nil: no certificate) over HTTP/1.1 or
// HTTP/2 and checks that the gateway answered the refusal of the
// handshake: the status, the reason as the JSON error code, and that the
// upstream saw nothing.
func (e *env) refusedWith(leaf *testca.Leaf, h2 bool, reason Reason) map[string]any {
	e.t.Helper()
	hits := e.hits.Load()
	resp, err := e.client(leaf, h2).Get(e.url("/x"))
	if err != nil {
		e.t.Fatalf("a refused client gets an answer, not %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("refusal body: %v", err)
	}
	code, _ := body["error"].(map[string]any)["code"].(string)
	if resp.StatusCode != refusalStatus(reason) || code != reason.String() || resp.Header.Get("Content-Type") != "application/json" {
		e.t.Fatalf("%s %v, want %d %s", resp.Status, body, refusalStatus(reason), reason)
	}
	if e.hits.Load() != hits {
		e.t.Fatal("the upstream saw a refused client's request")
	}
	return body
}

func urlParse(s string) ([]*url.URL, error) {
	u, err := url.Parse(s)
	return []*url.URL{u}, err
}

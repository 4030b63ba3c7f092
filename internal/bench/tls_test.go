package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

func TestTLSAgainstBaseline(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)
	srvCert, srvKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/bench")).WriteFiles(t, dir, "server")
	cliCert, cliKey := ca.Issue(t, testca.WithID("spiffe://example.org/svc/bench")).WriteFiles(t, dir, "client")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServeBaseline(ctx, BaselineOptions{Listen: "127.0.0.1:0", Cert: srvCert, Key: srvKey, Bundle: bundle, Upstream: up.URL}, func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := RunTLS(ctx, TLSOptions{
		Addr: addr, Compare: addr, Names: []string{"one", "two"}, ServerPID: os.Getpid(), ComparePID: os.Getpid(),
		Cert: cliCert, Key: cliKey, CACert: bundle, ServerName: "localhost", Curve: "P256",
		Modes: []string{"full", "resumed", "keepalive"}, Path: "/", Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Concurrency: 2, Rounds: 2, Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 12 || res.Rows[0].Target != "one" || res.Rows[1].Target != "two" || res.Rows[6].Target != "two" {
		t.Fatalf("result rows: %+v", res.Rows)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 23 || !strings.HasPrefix(lines[0], "client: ecdsa-p256 key, offers P256, server chain verified once") ||
		!strings.HasPrefix(lines[1], "round ") {
		t.Fatalf("output:\n%s", out.String())
	}
	// Round 1 runs one before two, round 2 two before one. A 200 ms window
	// can pass without a single operation when the machine is loaded (seen
	// at load 28: a keep-alive row of 0), so a row may count none, but
	// every mode and target counts some across the two rounds.
	withOps := map[string]bool{}
	for i, l := range lines[2:14] {
		f := strings.Fields(l)
		mode := []string{"full", "resumed", "keepalive"}[i%6/2]
		name := []string{"one", "two"}[(i%2+i/6)%2]
		if len(f) != 13 || f[0] != fmt.Sprint(1+i/6) || f[1] != mode || f[2] != name || f[7] != "0" || f[12] != "TLS1.3/CurveP256/ecdsa-p256" {
			t.Fatalf("row %q: want round %d, %s, %s, no errors, TLS1.3/CurveP256/ecdsa-p256:\n%s", l, 1+i/6, mode, name, out.String())
		}
		if f[3] == "0" {
			continue
		}
		withOps[mode+" "+name] = true
		if !strings.HasSuffix(f[9], "%") || f[10] == "-" || f[11] == "-" {
			t.Fatalf("row %q has no server CPU figures:\n%s", l, out.String())
		}
	}
	if len(withOps) != 6 {
		t.Fatalf("modes and targets with operations in some round: %v\n%s", withOps, out.String())
	}
	if lines[14] != "ratio one/two (median of 2 rounds; each round in brackets)" {
		t.Fatalf("ratio header %q:\n%s", lines[14], out.String())
	}
	for i, mode := range []string{"full", "resumed", "keepalive"} {
		if f := strings.Fields(lines[15+2*i]); len(f) != 11 || f[0] != mode || f[1] != "wall-clock" || !strings.Contains(lines[15+2*i], "]   per server CPU-second ") {
			t.Fatalf("ratio line %q:\n%s", lines[15+2*i], out.String())
		}
		if f := strings.Fields(lines[16+2*i]); len(f) != 10 || f[0] != mode || f[1] != "p99" || f[6] != "one" || f[8] != "two" {
			t.Fatalf("p99 line %q:\n%s", lines[16+2*i], out.String())
		}
	}
	for i, name := range []string{"one", "two"} {
		want := fmt.Sprintf("answered %s: %d requests, warm-up included", name, res.Answered(i))
		if lines[21+i] != want || res.Answered(i) <= res.Rows[i].Ops {
			t.Fatalf("line %q, want %q (more than the first row's %d)", lines[18+i], want, res.Rows[i].Ops)
		}
	}
	// A client the baseline does not trust counts errors, not operations.
	other := testca.New(t, "example.org")
	oc, ok := other.Issue(t).WriteFiles(t, dir, "other")
	out.Reset()
	RunTLS(ctx, TLSOptions{Addr: addr, Cert: oc, Key: ok, Curve: "X25519",
		Modes: []string{"full"}, Path: "/", Duration: 100 * time.Millisecond, Concurrency: 1, Rounds: 1, Out: &out})
	if !strings.Contains(out.String(), "first error:") {
		t.Fatalf("untrusted client:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o   TLSOptions
		err string
	}{
		{TLSOptions{}, "--addr: no address given"},
		{TLSOptions{Addr: "x"}, "--cert, --key: a client certificate and key are required"},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 0}, "--rounds: must be 1 to 100, got 0"},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, ComparePID: 1}, "--compare-pid: no --compare address given"},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, Names: []string{"a", "b"}}, "--names: 2 names for 1 targets"},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, Curve: "P521"}, `--curve: unknown group "P521" (P256, X25519, X25519MLKEM768)`},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, Curve: "P256", Modes: []string{"slow"}}, `--mode: unknown mode "slow" (full, resumed, keepalive)`},
		{TLSOptions{Addr: "x", Cert: cliCert, Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, Curve: "P256", ServerPID: -5}, "--server-pid: bench: CPU time of process -5: open /proc/-5/stat: no such file or directory"},
		{TLSOptions{Addr: "x", Cert: filepath.Join(dir, "nope"), Key: cliKey, Concurrency: 1, Duration: time.Second, Rounds: 1, Curve: "P256"}, "--cert/--key: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		if _, err := RunTLS(ctx, tc.o); err == nil || err.Error() != tc.err {
			t.Errorf("RunTLS(%+v) = %v, want %q", tc.o, err, tc.err)
		}
	}
}

// The baseline proxies --proxy-prefix to the upstream and answers other
// paths 403 itself, as the gateway answers a path no route allows.
func TestBaselineProxyPrefix(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)
	srvCert, srvKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/bench")).WriteFiles(t, dir, "server")
	client := ca.Issue(t, testca.WithID("spiffe://example.org/svc/bench"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upReady, baseReady := make(chan string, 1), make(chan string, 1)
	upDone, baseDone := make(chan error, 1), make(chan error, 1)
	go func() { upDone <- ServeUpstream(ctx, "127.0.0.1:0", func(a string) { upReady <- a }) }()
	up := <-upReady
	go func() {
		baseDone <- ServeBaseline(ctx, BaselineOptions{Listen: "127.0.0.1:0", Cert: srvCert, Key: srvKey, Bundle: bundle,
			Upstream: "http://" + up, ProxyPrefix: "/bench"}, func(a string) { baseReady <- a })
	}()
	addr := <-baseReady
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{client.TLSCertificate()},
	}}}
	defer hc.CloseIdleConnections()
	for path, want := range map[string]string{"/bench/x": "200 ok\n", "/denied": "403 forbidden\n"} {
		resp, err := hc.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := fmt.Sprintf("%d %s", resp.StatusCode, body); got != want {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
	}
	if err := ServeBaseline(ctx, BaselineOptions{Cert: srvCert, Key: srvKey, Bundle: bundle, ProxyPrefix: "bench"}, nil); err == nil ||
		err.Error() != `--proxy-prefix: "bench" does not start with /` {
		t.Errorf("proxy prefix without a slash: %v", err)
	}
	cancel()
	if err := <-baseDone; err != nil {
		t.Error(err)
	}
	if err := <-upDone; err != nil {
		t.Error(err)
	}
}

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		err      string
		rest     string // what must be left unread
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nNEXT", 200, "", "NEXT"},
		{"chunked", "HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nNEXT", 403, "", "NEXT"},
		{"chunked with a trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-T: 1\r\n\r\nNEXT", 200, "", "NEXT"},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, "", "NEXT"},
		{"no framing", "HTTP/1.1 200 OK\r\n\r\nok", 0, "a keep-alive response without Content-Length or chunked framing", ""},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "malformed response from upstream: invalid Content-Length", ""},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", 0, "reading the body: unexpected EOF", ""},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n", 0, `malformed response from upstream: status line "SSH-2.0-OpenSSH_9.6"`, ""},
		{"informational", "HTTP/1.1 100 Continue\r\n\r\n", 0, "unexpected status 100", ""},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 0, `malformed response from upstream: header line "no colon"`, ""},
		{"cut head", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", 0, "reading the response head: EOF", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &answers{br: bufio.NewReader(strings.NewReader(tc.in))}
			status, err := a.read()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("read = %d, %v; want error %q", status, err, tc.err)
				}
				return
			}
			rest, _ := io.ReadAll(a.br)
			if err != nil || status != tc.status || string(rest) != tc.rest {
				t.Fatalf("read = %d, %v, rest %q; want %d, rest %q", status, err, rest, tc.status, tc.rest)
			}
		})
	}
}

// The bench upstream answers keep-alive requests, skips Content-Length
// bodies, refuses chunked ones and malformed heads, and honours
// Connection: close.
func TestUpstream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- ServeUpstream(ctx, "127.0.0.1:0", func(a string) { ready <- a }) }()
	addr := <-ready
	const ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
	for _, tc := range []struct{ name, send, want string }{
		{"keep-alive with a body", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", ok + ok + ok},
		{"chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", ok},
		{"gzip body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
			"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"malformed", "GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tc.send)
			got, err := io.ReadAll(c) // the upstream closes after the last answer
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
	// A stop closes idle keep-alive connections and returns.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(ok))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != ok {
		t.Fatalf("got %q, %v", buf, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("connection still open after the stop: read %d bytes", n)
	}
}

// The load generator reads what the other side of a connection sends: it
// may not panic, nor count an answer it did not read whole. (The codec
// underneath has its own fuzz targets in internal/gateway/h1.)
func FuzzReadAnswer(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
	f.Add("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-T: 1\r\n\r\n")
	f.Add("HTTP/1.1 204 No Content\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		status, err := (&answers{br: bufio.NewReader(strings.NewReader(in))}).read()
		if err == nil && (status < 200 || status > 999) {
			t.Fatalf("status %d without an error", status)
		}
	})
}

// The bare baseline answers 403 to every request on one keep-alive
// connection, refuses a client of another CA, and takes no upstream.
func TestBareBaseline(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)
	srvCert, srvKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/bench")).WriteFiles(t, dir, "server")
	client := ca.Issue(t, testca.WithID("spiffe://example.org/svc/bench"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- ServeBaseline(ctx, BaselineOptions{Listen: "127.0.0.1:0", Cert: srvCert, Key: srvKey, Bundle: bundle, Bare: true},
			func(a string) { ready <- a })
	}()
	addr := <-ready
	tr := &http.Transport{MaxConnsPerHost: 1, TLSClientConfig: &tls.Config{
		RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{client.TLSCertificate()},
	}}
	hc := &http.Client{Transport: tr}
	defer hc.CloseIdleConnections()
	conns := 0
	for range 3 {
		req, _ := http.NewRequest("GET", "https://"+addr+"/anything", nil)
		req = req.WithContext(httptraceConns(ctx, &conns))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := fmt.Sprintf("%d %s", resp.StatusCode, body); got != "403 forbidden\n" {
			t.Errorf("GET = %q, want 403 forbidden", got)
		}
	}
	if conns != 1 {
		t.Errorf("3 requests used %d connections, want 1 (keep-alive)", conns)
	}
	other := testca.New(t, "example.org").Issue(t)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{other.TLSCertificate()}})
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal comes after the client's Finished
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client of another CA: %v, want a certificate alert", err)
	}
	if err := ServeBaseline(ctx, BaselineOptions{Cert: srvCert, Key: srvKey, Bundle: bundle, Bare: true, Upstream: "http://127.0.0.1:1"}, nil); err == nil ||
		err.Error() != "--bare: answers every request itself; --upstream is not used" {
		t.Errorf("bare with an upstream: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// httptraceConns counts the new connections a request's transport dials.
func httptraceConns(ctx context.Context, n *int) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			*n++
		}
	}})
}

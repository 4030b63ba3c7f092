package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

func TestBenchAgainstBaseline(t *testing.T) {
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
		done <- runBenchBaseline(ctx, baselineOptions{listen: "127.0.0.1:0", cert: srvCert, key: srvKey, bundle: bundle, upstream: up.URL}, func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := runBench(ctx, &out, benchOptions{
		addr: addr, compare: addr, names: []string{"one", "two"}, serverPID: os.Getpid(), comparePID: os.Getpid(),
		cert: cliCert, key: cliKey, cacert: bundle, serverName: "localhost", curve: "P256",
		modes: []string{"full", "resumed", "keepalive"}, path: "/", duration: 200 * time.Millisecond, warmup: 50 * time.Millisecond,
		concurrency: 2, rounds: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 18 || !strings.HasPrefix(lines[0], "client: ecdsa-p256 key, offers P256, server chain verified once") ||
		!strings.HasPrefix(lines[1], "round ") {
		t.Fatalf("output:\n%s", out.String())
	}
	// Round 1 runs one before two, round 2 two before one.
	for i, l := range lines[2:14] {
		f := strings.Fields(l)
		mode := []string{"full", "resumed", "keepalive"}[i%6/2]
		name := []string{"one", "two"}[(i%2+i/6)%2]
		if len(f) != 13 || f[0] != fmt.Sprint(1+i/6) || f[1] != mode || f[2] != name || f[3] == "0" || f[7] != "0" || f[12] != "TLS1.3/CurveP256/ecdsa-p256" {
			t.Fatalf("row %q: want round %d, %s, %s, operations, no errors, TLS1.3/CurveP256/ecdsa-p256:\n%s", l, 1+i/6, mode, name, out.String())
		}
		if !strings.HasSuffix(f[9], "%") || f[10] == "-" || f[11] == "-" {
			t.Fatalf("row %q has no server CPU figures:\n%s", l, out.String())
		}
	}
	if lines[14] != "ratio one/two (median of 2 rounds; each round in brackets)" {
		t.Fatalf("ratio header %q:\n%s", lines[14], out.String())
	}
	for i, mode := range []string{"full", "resumed", "keepalive"} {
		if f := strings.Fields(lines[15+i]); len(f) != 11 || f[0] != mode || f[1] != "wall-clock" || !strings.Contains(lines[15+i], "]   per server CPU-second ") {
			t.Fatalf("ratio line %q:\n%s", lines[15+i], out.String())
		}
	}
	// A client the baseline does not trust counts errors, not operations.
	other := testca.New(t, "example.org")
	oc, ok := other.Issue(t).WriteFiles(t, dir, "other")
	out.Reset()
	runBench(ctx, &out, benchOptions{addr: addr, cert: oc, key: ok, curve: "X25519",
		modes: []string{"full"}, path: "/", duration: 100 * time.Millisecond, concurrency: 1, rounds: 1})
	if !strings.Contains(out.String(), "first error:") {
		t.Fatalf("untrusted client:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o   benchOptions
		err string
	}{
		{benchOptions{}, "--addr: no address given"},
		{benchOptions{addr: "x"}, "--cert, --key: a client certificate and key are required"},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 0}, "--rounds: must be 1 to 100, got 0"},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, comparePID: 1}, "--compare-pid: no --compare address given"},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, names: []string{"a", "b"}}, "--names: 2 names for 1 targets"},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, curve: "P521"}, `--curve: unknown group "P521" (P256, X25519, X25519MLKEM768)`},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, curve: "P256", modes: []string{"slow"}}, `--mode: unknown mode "slow" (full, resumed, keepalive)`},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, curve: "P256", serverPID: -5}, "--server-pid: loadgen: CPU time of process -5: open /proc/-5/stat: no such file or directory"},
		{benchOptions{addr: "x", cert: filepath.Join(dir, "nope"), key: cliKey, concurrency: 1, duration: time.Second, rounds: 1, curve: "P256"}, "--cert/--key: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		if err := runBench(ctx, &out, tc.o); err == nil || err.Error() != tc.err {
			t.Errorf("runBench(%+v) = %v, want %q", tc.o, err, tc.err)
		}
	}
}

// The baseline proxies --proxy-prefix to the upstream and answers other
// paths 403 itself, as the gateway answers a path no route allows.
func TestBenchBaselineProxyPrefix(t *testing.T) {
	ca := testca.New(t, "example.org")
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)
	srvCert, srvKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/bench")).WriteFiles(t, dir, "server")
	client := ca.Issue(t, testca.WithID("spiffe://example.org/svc/bench"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upReady, baseReady := make(chan string, 1), make(chan string, 1)
	upDone, baseDone := make(chan error, 1), make(chan error, 1)
	go func() { upDone <- runBenchUpstream(ctx, "127.0.0.1:0", func(a string) { upReady <- a }) }()
	up := <-upReady
	go func() {
		baseDone <- runBenchBaseline(ctx, baselineOptions{listen: "127.0.0.1:0", cert: srvCert, key: srvKey, bundle: bundle,
			upstream: "http://" + up, proxyPrefix: "/bench"}, func(a string) { baseReady <- a })
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
	if err := runBenchBaseline(ctx, baselineOptions{cert: srvCert, key: srvKey, bundle: bundle, proxyPrefix: "bench"}, nil); err == nil ||
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

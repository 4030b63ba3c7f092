package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
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
		addr: addr, compare: addr, cert: cliCert, key: cliKey, cacert: bundle, serverName: "localhost",
		modes: []string{"full", "resumed", "keepalive"}, path: "/", duration: 200 * time.Millisecond, concurrency: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, "  ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "mode ") {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 7 || f[2] == "0" || f[6] != "0" {
			t.Fatalf("row %q has no successful operations or has errors:\n%s", l, out.String())
		}
	}
	// A client the baseline does not trust counts errors, not operations.
	other := testca.New(t, "example.org")
	oc, ok := other.Issue(t).WriteFiles(t, dir, "other")
	out.Reset()
	runBench(ctx, &out, benchOptions{addr: addr, cert: oc, key: ok, cacert: bundle, serverName: "localhost",
		modes: []string{"full"}, path: "/", duration: 100 * time.Millisecond, concurrency: 1})
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
		{benchOptions{addr: "x", cert: cliCert, key: cliKey}, "--cacert: no roots given to verify the server"},
		{benchOptions{addr: "x", cert: cliCert, key: cliKey, cacert: bundle, concurrency: 1, duration: time.Second, modes: []string{"slow"}}, `--mode: unknown mode "slow" (full, resumed, keepalive)`},
		{benchOptions{addr: "x", cert: filepath.Join(dir, "nope"), key: cliKey, cacert: bundle, concurrency: 1, duration: time.Second}, "--cert/--key: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		if err := runBench(ctx, &out, tc.o); err == nil || err.Error() != tc.err {
			t.Errorf("runBench(%+v) = %v, want %q", tc.o, err, tc.err)
		}
	}
}

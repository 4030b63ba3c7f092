package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

func TestReloadKeepsConnectionsAndRejectsBrokenConfig(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, testca.WithID("spiffe://example.org/team/x"))
	c := e.dial(leaf)
	br := bufio.NewReader(c)
	get := func(path string) int {
		t.Helper()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("/team/x"); s != 403 {
		t.Fatalf("before reload: %d", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sighup := make(chan os.Signal, 1)
	go e.gw.WatchConfig(ctx, e.cfgPath, 20*time.Millisecond, sighup)
	time.Sleep(50 * time.Millisecond) // let the watcher take its first fingerprint

	// A new route appears by editing the file; the open keep-alive
	// connection uses it without reconnecting.
	e.writeConfig(`
routes:
  - name: team
    path_prefix: /team
    upstream: UPSTREAM
    allow: ["spiffe://example.org/team/*"]
` + defaultRoutes[len("\nroutes:\n"):])
	deadline := time.Now().Add(5 * time.Second)
	for get("/team/x") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("route not added by reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A broken config is rejected and the running routes stay.
	good, _ := os.ReadFile(e.cfgPath)
	os.WriteFile(e.cfgPath, append(good, []byte("bogus_field: 1\n")...), 0o600)
	sighup <- os.Interrupt
	time.Sleep(100 * time.Millisecond)
	if s := get("/team/x"); s != 200 {
		t.Fatalf("after broken reload: %d", s)
	}
	err := e.gw.ReloadFrom(e.cfgPath)
	if err == nil || !strings.Contains(err.Error(), "bogus_field: unknown field") {
		t.Fatalf("ReloadFrom error = %v", err)
	}
	// A config naming a missing upstream CA file is rejected too.
	os.WriteFile(e.cfgPath, []byte(strings.Replace(string(good), "upstream: "+e.upstream.URL, "upstream: https://127.0.0.1:1\n    upstream_ca: missing.pem", 1)), 0o600)
	if err := e.gw.ReloadFrom(e.cfgPath); err == nil || !strings.Contains(err.Error(), "upstream_ca: open") {
		t.Fatalf("ReloadFrom error = %v", err)
	}
	if s := get("/team/x"); s != 200 {
		t.Fatalf("after second broken reload: %d", s)
	}
}

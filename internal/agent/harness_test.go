package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
)

const td = "example.org"

// env is a certgate server on 127.0.0.1 with a real CA, a real SQLite store
// and short client lifetimes, all on one fake clock (internal/testenv).
type env struct {
	t        *testing.T
	clock    *clock.Fake
	lifetime time.Duration
	store    store.Store
	authz    *ca.Service
	url      string
	root     *x509.Certificate
	te       *testenv.Env
}

func newEnv(t *testing.T, lifetime time.Duration) *env {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	te := testenv.Start(t, testenv.WithClock(clk), testenv.WithServiceOptions(func(o *ca.ServiceOptions) {
		o.Client = ca.ClientProfile
		o.Client.Lifetime = lifetime
	}))
	return &env{t: t, clock: clk, lifetime: lifetime, store: te.Store, authz: te.Authority, url: te.URL, root: te.Root, te: te}
}

// stopServer stops the server; its address refuses connections after.
func (e *env) stopServer() {
	if err := e.te.StopServer(); err != nil {
		e.t.Errorf("serve: %v", err)
	}
}

// restartServer serves again on the same address.
func (e *env) restartServer() {
	e.t.Helper()
	if err := e.te.RestartServer(); err != nil {
		e.t.Fatal(err)
	}
}

// enroll redeems a fresh token for path into a new directory, the way
// `certgate enroll` does.
func (e *env) enroll(path string, kt keytype.Type) string {
	e.t.Helper()
	tok := e.te.Token(e.t, "spiffe://"+td+path, 0)
	dir := filepath.Join(e.t.TempDir(), "client")
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok, OutDir: dir, KeyType: kt, Now: e.clock.Now}); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

// logBuffer collects slog output for assertions and mirrors it to t.Log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newAgent builds an agent for dir on the env's clock; the log lands in
// the returned buffer.
func (e *env) newAgent(dir string, mod func(*Options)) (*Agent, *logBuffer) {
	e.t.Helper()
	lb := &logBuffer{t: e.t}
	o := Options{Dir: dir, ServerURL: e.url, Clock: e.clock, Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&o)
	}
	a, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return a, lb
}

// run starts a.Run until the test ends. errc receives Run's error if Run
// ends by itself.
func run(t *testing.T, a *Agent) (errc chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc = make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return errc
}

// waitFor polls cond for up to 15 s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitSleeping waits until the agent is blocked on the clock.
func (e *env) waitSleeping(t *testing.T) {
	t.Helper()
	waitFor(t, "the agent to wait on the clock", func() bool { return e.clock.Pending() > 0 })
}

// readLeaf returns the certificate in dir/cert.pem.
func readLeaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	return testenv.ReadLeaf(t, dir)
}

// gatewayEnv is a real gateway in front of an echo upstream, trusting the
// env's CA, on the env's clock.
type gatewayEnv struct {
	url string
	gw  *gateway.Gateway
}

func (e *env) startGateway() *gatewayEnv {
	t := e.t
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"identity": r.Header.Get(gateway.HeaderIdentity),
			"serial":   r.Header.Get(gateway.HeaderSerial),
			"path":     r.URL.Path,
		})
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	e.te.WriteClientFiles(t, dir, e.te.IssueDirect(t, "/gateway/gw1", ca.ServerProfile))
	cfgPath := filepath.Join(dir, "gateway.yaml")
	yaml := fmt.Appendf(nil, `listen: 127.0.0.1:0
trust_domain: example.org
bundle: bundle.pem
cert: cert.pem
key: key.pem
access_log:
  path: %s
routes:
  - name: api
    path_prefix: /
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, filepath.Join(dir, "access.log"), up.URL)
	if err := os.WriteFile(cfgPath, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Clock: e.clock, SweepInterval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logBuffer{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		gw.Close()
	})
	return &gatewayEnv{url: "https://" + gw.Addr().String(), gw: gw}
}

// tlsCert is the certificate a proxy connection would present now.
func tlsCert(t *testing.T, a *Agent) *tls.Certificate {
	t.Helper()
	c, err := a.GetClientCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

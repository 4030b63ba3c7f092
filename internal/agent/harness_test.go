package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
)

const td = "example.org"

// fakeClock is a Clock whose waits fire when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	f       *clock.Fake
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{f: clock.NewFake(t)} }

func (c *fakeClock) Now() time.Time { return c.f.Now() }

func (c *fakeClock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if now := c.f.Now(); !t.After(now) {
		ch <- now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: t, ch: ch})
	return ch
}

// Advance moves the clock and fires every wait that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.f.Advance(d)
	now := c.f.Now()
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(now) {
			kept = append(kept, w)
		} else {
			w.ch <- now
		}
	}
	c.waiters = kept
}

// AdvanceTo moves the clock to t if t is later.
func (c *fakeClock) AdvanceTo(t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

// pending is the number of waits not yet fired.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// env is a certgate server on 127.0.0.1 with a real CA, a real SQLite store
// and short client lifetimes, all on one fake clock.
type env struct {
	t        *testing.T
	clock    *fakeClock
	lifetime time.Duration
	store    store.Store
	authz    *ca.Service
	addr     string
	url      string
	root     *x509.Certificate

	mu   sync.Mutex
	stop func()
}

func newEnv(t *testing.T, lifetime time.Duration) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: newFakeClock(time.Now().UTC().Truncate(time.Second)), lifetime: lifetime}
	rootKey, _ := keytype.Generate(keytype.ECDSAP256)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: td, Key: rootKey, Now: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := keytype.Generate(keytype.ECDSAP256)
	inter, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: interKey, Now: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	iss, err := ca.NewIssuer(inter, interKey, td, e.clock)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.url = "https://" + e.addr
	client := ca.ClientProfile
	client.Lifetime = lifetime
	e.authz, err = ca.NewService(ca.ServiceOptions{Issuer: iss, Roots: []*x509.Certificate{root}, Store: st, Clock: e.clock, ServerURL: e.url, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	e.serve(ln)
	t.Cleanup(e.stopServer)
	return e
}

// serve runs a new server instance on ln.
func (e *env) serve(ln net.Listener) {
	e.t.Helper()
	srv, err := server.New(server.Options{Authority: e.authz, Store: e.store, Clock: e.clock, Hostnames: []string{"127.0.0.1"}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e.mu.Lock()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("serve: %v", err)
		}
	}
	e.mu.Unlock()
}

// stopServer stops the server; its address refuses connections after.
func (e *env) stopServer() {
	e.mu.Lock()
	stop := e.stop
	e.stop = nil
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// restartServer serves again on the same address.
func (e *env) restartServer() {
	e.t.Helper()
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.serve(ln)
}

// enroll redeems a fresh token for path into a new directory, the way
// `certgate enroll` does.
func (e *env) enroll(path string, kt keytype.Type) string {
	e.t.Helper()
	id, err := identity.New(td, path)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.authz.CreateToken(context.Background(), "spiffe://example.org/admin/test", id, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	dir := filepath.Join(e.t.TempDir(), "client")
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: tok.String(), OutDir: dir, KeyType: kt, Now: e.clock.Now}); err != nil {
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
	waitFor(t, "the agent to wait on the clock", func() bool { return e.clock.pending() > 0 })
}

// readLeaf returns the certificate in dir/cert.pem.
func readLeaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, enroll.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
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
	key, _ := keytype.Generate(keytype.ECDSAP256)
	id := identity.MustParse("spiffe://example.org/gateway/gw1")
	iss, err := e.authz.IssueDirect(context.Background(), ca.Request{PublicKey: key.Public(), Identity: id,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca.ServerProfile, store.ObtainedServer, "test")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pemutil.EncodePrivateKey(key)
	for name, data := range map[string][]byte{
		"gateway.pem": pemutil.EncodeCertificates(append([]*x509.Certificate{iss.Cert}, iss.Chain...)...),
		"gateway.key": keyPEM,
		"bundle.pem":  pemutil.EncodeCertificates(e.root),
		"gateway.yaml": fmt.Appendf(nil, `listen: 127.0.0.1:0
trust_domain: example.org
bundle: bundle.pem
cert: gateway.pem
key: gateway.key
access_log:
  path: %s
routes:
  - name: api
    path_prefix: /
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, filepath.Join(dir, "access.log"), up.URL),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadGateway(filepath.Join(dir, "gateway.yaml"))
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

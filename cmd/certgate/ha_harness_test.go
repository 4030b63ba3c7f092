package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/store"
)

// haSetup is one certgate installation on a PostgreSQL store, served by
// several replicas that share its directory (each on its own --listen
// address), with gateways that follow them.
type haSetup struct {
	t        *testing.T
	dir      string
	roots    *x509.CertPool
	admin    tls.Certificate
	home     string // the address in the config: replica 0 listens there
	upstream string

	mu     sync.Mutex
	urls   []string // replica base URLs, by replica index
	admins []*apiclient.Client
	anons  []*apiclient.Client
}

// newHASetup runs "certgate init --store storeURL" in a new directory.
func newHASetup(t *testing.T, storeURL string) *haSetup {
	t.Helper()
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	h := &haSetup{t: t, dir: filepath.Join(t.TempDir(), "ca"), home: freeAddr(t)}
	mustCLI(t, "init", "--dir", h.dir, "--trust-domain", "example.org", "--listen", h.home, "--store", storeURL)
	var err error
	h.admin, h.roots, _, err = cadir.AdminCredentials(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.Header.Get(gateway.HeaderIdentity))
	}))
	t.Cleanup(up.Close)
	h.upstream = up.URL
	return h
}

// addReplica records a replica's URL and makes its API clients; it
// returns the replica's index.
func (h *haSetup) addReplica(u string) int {
	h.t.Helper()
	admin, err := apiclient.New(apiclient.Options{ServerURL: u, Roots: h.roots, Certificate: &h.admin, Timeout: 10 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	anon, err := apiclient.New(apiclient.Options{ServerURL: u, Roots: h.roots, Timeout: 10 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(admin.CloseIdleConnections)
	h.t.Cleanup(anon.CloseIdleConnections)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.urls, h.admins, h.anons = append(h.urls, u), append(h.admins, admin), append(h.anons, anon)
	return len(h.urls) - 1
}

// startReplica serves the directory in-process on listen until the test
// ends; it returns the replica's index.
func (h *haSetup) startReplica(listen string) int {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), h.dir, listen, []byte(testPassphrase), func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		h.t.Fatalf("replica on %s: %v", listen, err)
	}
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("replica on %s: %v", listen, err)
		}
	})
	return h.addReplica("https://" + addr)
}

// startReplicaProcess runs "certgate server --dir DIR --listen listen" as a
// child process, killed when the test ends.
func (h *haSetup) startReplicaProcess(ctx context.Context, bin, listen string) (*serverProcess, int) {
	h.t.Helper()
	p := startServerProcess(ctx, h.t, bin, h.dir, "--listen", listen)
	return p, h.addReplica(p.url)
}

// client enrolls spiffe://example.org/svc/NAME through replica r.
func (h *haSetup) enroll(r int, name string) (client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.mu.Lock()
	admin, anon := h.admins[r], h.anons[r]
	h.mu.Unlock()
	id := "spiffe://example.org/svc/" + name
	tok, err := admin.CreateToken(ctx, id, 10*time.Minute)
	if err != nil {
		return client{}, err
	}
	key, csr, err := newCSR(id)
	if err != nil {
		return client{}, err
	}
	resp, err := anon.Enroll(ctx, tok.Token, csr)
	if err != nil {
		return client{}, err
	}
	keyPEM, err := pemutil.EncodePrivateKey(key)
	if err != nil {
		return client{}, err
	}
	cert, err := tls.X509KeyPair([]byte(resp.Certificate+resp.Chain), keyPEM)
	if err != nil {
		return client{}, err
	}
	return client{cert: cert, serial: cert.Leaf.SerialNumber.Text(16), id: id}, nil
}

func newCSR(id string) (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	u, err := url.Parse(id)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, "", err
	}
	return key, string(pemutil.EncodeCSR(der)), nil
}

// haGateway is a gateway built like "certgate gateway" builds it (config
// file, feed follower over server.urls, gateway.New), with a hook on its
// revocation holder that records every change of position.
type haGateway struct {
	name   string
	addr   string
	holder *revocation.Holder

	mu    sync.Mutex
	steps []gatewayStep
}

// gatewayStep is one change of the gateway's revocation set position.
type gatewayStep struct {
	from, to int64
	added    []string
	at       time.Time
}

// startGateway runs a gateway that follows the replicas at urls, in that
// order of preference.
func (h *haSetup) startGateway(name string, urls []string) *haGateway {
	t := h.t
	t.Helper()
	gwDir := t.TempDir()
	enrollGateway(t, h.dir, gwDir)
	cfgPath := filepath.Join(gwDir, "gateway.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
bundle: %s
cert: cert.pem
key: key.pem
server:
  urls: [%s]
revocation:
  mode: feed
  max_staleness: 1m
  max_backoff: 300ms
routes:
  - name: api
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, filepath.Join(h.dir, "bundle.pem"), strings.Join(urls, ", "), h.upstream)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gc, err := config.LoadGateway(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("gateway", name)
	g := &haGateway{name: name, holder: revocation.NewHolder()}
	g.holder.OnChange(g.record)
	src, err := revocationSource(gc, clock.Real{}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := gateway.NewConfig(gc)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(rc, gateway.Options{Clock: clock.Real{}, Logger: log, AccessLog: accesslog.New(io.Discard),
		Revocations: g.holder, MaxStaleness: gc.Revocation.MaxStaleness.Std()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		src.Run(ctx, g.holder)
	}()
	t.Cleanup(func() { cancel(); <-srcDone })
	deadline := time.Now().Add(10 * time.Second)
	for g.holder.Load().Updated().IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s: no revocation set from %v within 10s", name, urls)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	g.addr = gw.Addr().String()
	return g
}

func (g *haGateway) record(old, new *revocation.Set) {
	if old.Position() == new.Position() {
		return // a heartbeat
	}
	added := revocation.Added(old, new)
	slices.Sort(added)
	g.mu.Lock()
	g.steps = append(g.steps, gatewayStep{from: old.Position(), to: new.Position(), added: added, at: time.Now()})
	g.mu.Unlock()
}

// checkApplied verifies that the gateway applied exactly the events evs,
// each once, in order, one update per event: no event skipped, none
// applied twice.
func (g *haGateway) checkApplied(t *testing.T, evs []store.Event) {
	t.Helper()
	g.mu.Lock()
	steps := slices.Clone(g.steps)
	g.mu.Unlock()
	if len(steps) != len(evs) {
		t.Errorf("gateway %s made %d position changes for %d events", g.name, len(steps), len(evs))
	}
	for i, s := range steps {
		if i >= len(evs) {
			break
		}
		ev := evs[i]
		if s.from != ev.Position-1 || s.to != ev.Position || len(s.added) != 1 || s.added[0] != ev.Serial {
			t.Errorf("gateway %s, change %d: position %d -> %d adding %v; want %d -> %d adding [%s]",
				g.name, i, s.from, s.to, s.added, ev.Position-1, ev.Position, ev.Serial)
			return
		}
	}
}

// waitPosition waits until the gateway's set is at position pos.
func (g *haGateway) waitPosition(t *testing.T, pos int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for g.holder.Load().Position() != pos {
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s at position %d, want %d after %v", g.name, g.holder.Load().Position(), pos, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *haSetup) tlsConfig(c client) *tls.Config {
	return &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{c.cert}, NextProtos: []string{"http/1.1"}}
}

// openLive opens a keep-alive HTTP/1.1 connection through the gateway,
// proves it with a request, and returns a channel closed when the gateway
// closes it.
func (h *haSetup) openLive(g *haGateway, c client) (net.Conn, <-chan struct{}, error) {
	raw, err := tls.Dial("tcp", g.addr, h.tlsConfig(c))
	if err != nil {
		return nil, nil, err
	}
	w := watchConn(raw)
	br := bufio.NewReader(w)
	if code, err := get(raw, br); err != nil || code != http.StatusOK {
		raw.Close()
		return nil, nil, fmt.Errorf("gateway %s: first request: %d %v", g.name, code, err)
	}
	waitRead(br)
	return raw, w.done, nil
}

// refusedBy reports whether the gateway refuses c's handshake now.
func (h *haSetup) refusedBy(g *haGateway, c client) bool {
	err := refused(g.addr, h.tlsConfig(c))
	return err != nil && strings.Contains(err.Error(), "bad certificate")
}

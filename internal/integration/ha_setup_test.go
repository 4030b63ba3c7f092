package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/wire"
)

// haSetup is one certgate installation on a PostgreSQL store, served by
// several `certgate server` processes (replicas) that share its directory,
// each on its own --listen address, with gateways that follow them.
type haSetup struct {
	t        *testing.T
	bin      string
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
	h := &haSetup{t: t, bin: testenv.Certgate(t), dir: filepath.Join(t.TempDir(), "ca"), home: testenv.FreeAddr(t)}
	testenv.MustCLI(t, h.bin, "init", "--dir", h.dir, "--trust-domain", "example.org", "--listen", h.home, "--store", storeURL)
	var err error
	h.admin, h.roots, _, err = cadir.AdminCredentials(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	h.upstream = testenv.Upstream(t, gateway.HeaderIdentity)
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

// startReplica runs "certgate server --dir DIR --listen listen" until the
// test ends; it returns the replica's index.
func (h *haSetup) startReplica(listen string) int {
	h.t.Helper()
	_, i := h.startReplicaProcess(context.Background(), listen)
	return i
}

// startReplicaProcess is startReplica for a test that kills the process.
func (h *haSetup) startReplicaProcess(ctx context.Context, listen string) (*testenv.ServerProcess, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p := testenv.StartServerProcess(ctx, h.t, h.bin, h.dir, h.roots, "--listen", listen)
	return p, h.addReplica(p.URL)
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

// haGateway is a gateway run as `certgate gateway` runs it, with a hook on
// its revocation holder that records every change of position.
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
// order of preference, once it has its first revocation set.
func (h *haSetup) startGateway(name string, urls []string) *haGateway {
	t := h.t
	t.Helper()
	gwDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.mu.Lock()
	admin := h.admins[0]
	h.mu.Unlock()
	// Roles are data: the gateway identity is granted the gateway role (so
	// the CA gives it a serving certificate), and its token names it.
	id := "spiffe://example.org" + identity.GatewayPrefix + name
	if _, err := admin.GrantRole(ctx, wire.RoleChange{Role: "gateway", Holder: id}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateRoleToken(ctx, id, "gateway", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Enroll(ctx, enroll.Options{Token: tok.Token, OutDir: gwDir, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	g := &haGateway{name: name, holder: revocation.NewHolder()}
	g.holder.OnChange(g.record)
	gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: gwDir, Holder: g.holder,
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("gateway", name),
		Config: gatewaytest.Config{
			Bundle: filepath.Join(h.dir, "bundle.pem"), Cert: "cert.pem", Key: "key.pem", ServerURLs: urls,
			MaxStaleness: "1m", MaxBackoff: "300ms",
			Routes: []gatewaytest.Route{{Name: "api", Upstream: h.upstream, Allow: []string{"spiffe://example.org/svc/*"}}},
		}})
	if g.holder.Load().Updated().IsZero() {
		t.Fatalf("gateway %s: no revocation set from %v", name, urls)
	}
	g.addr = gw.Addr
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
	var steps []gatewayStep
	for _, s := range g.steps {
		// The CA's own events move the position and add no serial.
		if len(s.added) > 0 {
			steps = append(steps, s)
		}
	}
	g.mu.Unlock()
	if len(steps) != len(evs) {
		t.Errorf("gateway %s made %d position changes for %d events", g.name, len(steps), len(evs))
	}
	for i, s := range steps {
		if i >= len(evs) {
			break
		}
		ev := evs[i]
		if s.to != ev.Position || len(s.added) != 1 || s.added[0] != ev.Serial {
			t.Errorf("gateway %s, change %d: position %d -> %d adding %v; want %d -> %d adding [%s]",
				g.name, i, s.from, s.to, s.added, ev.Position-1, ev.Position, ev.Serial)
			return
		}
	}
}

// revokeEvents returns the revocation events of the store (the CA's own
// events come before them) and the position of the last event.
func revokeEvents(t *testing.T, st store.Store) ([]store.Event, int64) {
	t.Helper()
	all, err := st.Events(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	for _, ev := range all {
		if ev.Kind == store.EventRevoke {
			evs = append(evs, ev)
		}
	}
	if len(all) == 0 {
		return evs, 0
	}
	return evs, all[len(all)-1].Position
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

func (h *haSetup) tlsConfig(c client) *tls.Config { return clientTLS(h.roots, c, "http/1.1") }

// openLive opens a keep-alive HTTP/1.1 connection through the gateway,
// proves it with a request, and returns a channel closed when the gateway
// closes it.
func (h *haSetup) openLive(g *haGateway, c client) (net.Conn, <-chan struct{}, error) {
	conn, br, done, err := openLive(g.addr, h.tlsConfig(c))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway %s: %w", g.name, err)
	}
	waitRead(br)
	return conn, done, nil
}

// refusedBy reports whether the gateway refuses c as revoked now.
func (h *haSetup) refusedBy(g *haGateway, c client) bool {
	err := refused(g.addr, h.tlsConfig(c))
	return err != nil && err.Error() == "refused: 403 revoked"
}

package workloadapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	spiffeapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/workloadapi"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serve runs a Workload API server of the agent's credentials on a new
// socket and returns its unix:// address.
func serve(t *testing.T, a *agent.Agent, o workloadapi.Options) (string, *countingListener) {
	t.Helper()
	s, err := workloadapi.New(a.Credentials(), o)
	if err != nil {
		t.Fatal(err)
	}
	a.OnRotate(s.Update)
	dir, err := os.MkdirTemp("", "wl") // short: a socket path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := workloadapi.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, cl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "unix://" + path, cl
}

// TestX509SourceFollowsRenewals: a go-spiffe X509Source gets the agent's
// SVID, then each renewed one on the same connection, and calls a real
// gateway with tlsconfig.MTLSClientConfig before and after.
func TestX509SourceFollowsRenewals(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	const lifetime = time.Hour
	e := testenv.Start(t, testenv.WithClock(clk), testenv.WithServiceOptions(func(o *ca.ServiceOptions) {
		o.Client = ca.ClientProfile
		o.Client.Lifetime = lifetime
	}))
	dir := filepath.Join(t.TempDir(), "billing")
	id := "spiffe://" + e.TrustDomain + "/svc/billing"
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.Token(t, id, 0), OutDir: dir, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Dir: dir, ServerURL: e.URL, Clock: clk, Rand: func() float64 { return 0.5 }, CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(runCtx) }()
	t.Cleanup(func() { stopAgent(); <-agentDone })
	addr, ln := serve(t, a, workloadapi.Options{})

	// A gateway in front of an upstream that echoes the caller's identity.
	gwDir := t.TempDir()
	gwID := "spiffe://" + e.TrustDomain + identity.GatewayPrefix + "gw1"
	e.WriteClientFiles(t, gwDir, e.IssueDirect(t, identity.GatewayPrefix+"gw1", ca.GatewayProfile))
	gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: gwDir, Clock: clk, Log: slog.New(slog.DiscardHandler), Config: gatewaytest.Config{
		Bundle: "bundle.pem", Cert: "cert.pem", Key: "key.pem", ServerURLs: []string{e.URL}, Mode: "pull", Refresh: "100ms",
		Routes: []gatewaytest.Route{{Name: "api", Upstream: testenv.Upstream(t, gateway.HeaderIdentity), Allow: []string{id}}},
	}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := spiffeapi.NewX509Source(ctx, spiffeapi.WithClientOptions(spiffeapi.WithAddr(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// call makes a new connection to the gateway with the source's
	// current SVID. The gateway reads the fake clock too: right after a
	// jump it may call its revocation data stale until its next pull
	// (100 ms of real time), so a 503 is retried for a while.
	call := func() string {
		t.Helper()
		tlsCfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(spiffeid.RequireFromString(gwID)))
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := hc.Get("https://" + gw.Addr + "/v1/pay")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
			if resp.StatusCode != 503 || time.Now().After(deadline) {
				t.Fatalf("gateway: %d %s", resp.StatusCode, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != id || svid.Certificates[0].SerialNumber.Text(16) != a.Status().Serial {
		t.Fatalf("first SVID %s serial %s, agent has %s", svid.ID, svid.Certificates[0].SerialNumber.Text(16), a.Status().Serial)
	}
	bundle, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString(e.TrustDomain))
	if err != nil || len(bundle.X509Authorities()) != 1 || !bundle.X509Authorities()[0].Equal(e.Root) {
		t.Fatalf("bundle: %v", err)
	}
	if got := call(); got != "hello "+id+"\n" {
		t.Fatalf("gateway said %q", got)
	}

	seen := map[string]bool{svid.Certificates[0].SerialNumber.Text(16): true}
	for i := 1; i <= 2; i++ {
		updated := src.Updated()
		next := a.Status().NextRenewal
		if next.IsZero() {
			waitFor(t, func() bool { return !a.Status().NextRenewal.IsZero() })
			next = a.Status().NextRenewal
		}
		clk.Set(next.Add(time.Second))
		select {
		case <-updated:
		case <-ctx.Done():
			t.Fatalf("renewal %d: the source was not updated", i)
		}
		svid, err := src.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		serial := svid.Certificates[0].SerialNumber.Text(16)
		if seen[serial] || serial != a.Credentials().Serial {
			t.Fatalf("renewal %d: SVID serial %s (agent: %s, seen before: %v)", i, serial, a.Credentials().Serial, seen[serial])
		}
		seen[serial] = true
		if got := call(); got != "hello "+id+"\n" {
			t.Fatalf("renewal %d: gateway said %q", i, got)
		}
	}
	if n := ln.n.Load(); n != 1 {
		t.Fatalf("%d connections to the Workload API; want the one the source opened", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCallersRefused: a caller whose uid and gid are not on the allow
// list gets PermissionDenied, one without the security header
// InvalidArgument; a caller allowed by gid is served.
func TestCallersRefused(t *testing.T) {
	e := testenv.Start(t)
	dir := filepath.Join(t.TempDir(), "billing")
	id := "spiffe://" + e.TrustDomain + "/svc/billing"
	if _, err := enroll.Enroll(context.Background(), enroll.Options{Token: e.Token(t, id, 0), OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Dir: dir, ServerURL: e.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const stranger = 4242
	if os.Getuid() == stranger || os.Getgid() == stranger {
		t.Skip("this test runs as uid or gid 4242")
	}
	denied, _ := serve(t, a, workloadapi.Options{UIDs: []uint32{stranger}, GIDs: []uint32{stranger}})
	_, err = spiffeapi.FetchX509SVID(ctx, spiffeapi.WithAddr(denied))
	want := fmt.Sprintf("rpc error: code = PermissionDenied desc = no identity issued: uid %d, gid %d is not allowed", os.Getuid(), os.Getgid())
	if status.Code(err) != codes.PermissionDenied || err.Error() != want {
		t.Fatalf("uid outside the allow list: %v\nwant %s", err, want)
	}
	if _, err := spiffeapi.FetchX509Bundles(ctx, spiffeapi.WithAddr(denied)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bundles, uid outside the allow list: %v", err)
	}

	byGID, _ := serve(t, a, workloadapi.Options{UIDs: []uint32{stranger}, GIDs: []uint32{uint32(os.Getgid())}})
	svid, err := spiffeapi.FetchX509SVID(ctx, spiffeapi.WithAddr(byGID))
	if err != nil || svid.ID.String() != id {
		t.Fatalf("allowed by gid: %v", err)
	}

	// No security header: a raw gRPC client that does not send it.
	conn, err := grpc.NewClient(byGID, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "security header missing from request" {
		t.Fatalf("missing header: %v", err)
	}
	// JWT-SVIDs are not offered.
	_, err = workload.NewSpiffeWorkloadAPIClient(conn).FetchJWTSVID(workloadCtx(ctx), &workload.JWTSVIDRequest{Audience: []string{"x"}})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("FetchJWTSVID: %v", err)
	}
}

// workloadCtx carries the security header.
func workloadCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, workloadapi.Header, "true")
}

package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// The benchmarks compare the gateway with the baselines the issue names,
// in the same run with the same certificates: a bare crypto/tls server
// with RequireAndVerifyClientCert (handshakes) and httputil.ReverseProxy
// behind it (proxying). Client and server share the machine, so compare
// the rows, not the absolute numbers; `certgate bench` pins the server.
//
//	go test -run '^$' -bench 'Handshake|Proxy' -benchtime 3s ./internal/gateway

// benchTargets starts a gateway and the bare baseline in front of one fast
// upstream. Both answer /denied with 403 without an upstream, and proxy
// /bench to the upstream.
type benchTargets struct {
	e       *env
	leaf    *testca.Leaf
	gateway string
	bare    string
}

func newBenchTargets(b *testing.B) *benchTargets {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	}))
	b.Cleanup(up.Close)
	e := newEnv(b, quiet(), withRoutes(`
routes:
  - name: bench
    path_prefix: /bench
    upstream: `+up.URL+`
    allow: ["spiffe://example.org/svc/*"]
`))
	bt := &benchTargets{e: e, leaf: e.ca.Issue(b, withSvc("bench")), gateway: e.addr()}

	// The baseline: net/http + crypto/tls verifying client certificates,
	// httputil.ReverseProxy for /bench.
	gwLeaf := e.ca.Issue(b, testca.Server("spiffe://example.org/gateway/bare"))
	target, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	mux := http.NewServeMux()
	mux.Handle("/bench", rp)
	mux.HandleFunc("/denied", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "forbidden", 403) })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{gwLeaf.TLSCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    e.ca.Pool(),
		NextProtos:   []string{"http/1.1"},
	}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	bt.bare = srv.Listener.Addr().String()
	return bt
}

func (bt *benchTargets) clientConfig(cache tls.ClientSessionCache) *tls.Config {
	tc := bt.e.tlsConfig(bt.leaf)
	tc.NextProtos = []string{"http/1.1"}
	tc.CurvePreferences = []tls.CurveID{tls.CurveP256} // as certgate bench offers
	tc.ClientSessionCache = cache
	return tc
}

const deniedRequest = "GET /denied HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"

// oneShot connects, does one request that the server answers itself, and
// closes: the client waits for the server to have verified it.
func oneShot(b *testing.B, addr string, tc *tls.Config) bool {
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		b.Error(err)
		return false
	}
	defer c.Close()
	io.WriteString(c, deniedRequest)
	var buf [12]byte
	if _, err := io.ReadFull(c, buf[:]); err != nil || string(buf[:]) != "HTTP/1.1 403" {
		b.Errorf("response %q %v", buf, err)
		return false
	}
	return c.ConnectionState().DidResume
}

func BenchmarkHandshake(b *testing.B) {
	bt := newBenchTargets(b)
	for _, mode := range []string{"full", "resumed"} {
		for _, target := range []struct{ name, addr string }{{"bare", bt.bare}, {"gateway", bt.gateway}} {
			b.Run(mode+"/"+target.name, func(b *testing.B) {
				var cache tls.ClientSessionCache
				if mode == "resumed" {
					cache = tls.NewLRUClientSessionCache(64)
				}
				tc := bt.clientConfig(cache)
				if mode == "resumed" {
					oneShot(b, target.addr, tc)
				}
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if resumed := oneShot(b, target.addr, tc); resumed != (mode == "resumed") && mode == "resumed" {
							b.Error("session not resumed")
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			})
		}
	}
}

func BenchmarkProxyKeepAlive(b *testing.B) {
	bt := newBenchTargets(b)
	for _, target := range []struct{ name, addr string }{{"bare", bt.bare}, {"gateway", bt.gateway}} {
		b.Run(target.name, func(b *testing.B) {
			tc := bt.clientConfig(nil)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := tls.Dial("tcp", target.addr, tc)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n")
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// BenchmarkVerifyChain compares a cold chain build with the cached
// intermediate path a repeat client takes.
func BenchmarkVerifyChain(b *testing.B) {
	ca := testca.New(b, td)
	leaf := ca.Issue(b, withSvc("a"))
	certs := []*x509.Certificate{leaf.Cert, ca.Intermediate}
	now := time.Now()
	b.Run("x509.Verify", func(b *testing.B) {
		for b.Loop() {
			tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
			if _, err := tr.verifyChain(certs, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-intermediate", func(b *testing.B) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		tr.verifyChain(certs, now)
		if tr.cached(ca.Intermediate.Raw) == nil {
			b.Fatal("intermediate not cached")
		}
		for b.Loop() {
			// A leaf not seen before: its signature is checked.
			tr.leafMu.Lock()
			clear(tr.leaves)
			tr.leafMu.Unlock()
			if _, err := tr.verifyChain(certs, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-leaf", func(b *testing.B) {
		tr := newTrust(td, []*x509.Certificate{ca.Root}, nil)
		tr.verifyChain(certs, now)
		tr.verifyChain(certs, now)
		for b.Loop() {
			if _, err := tr.verifyChain(certs, now); err != nil {
				b.Fatal(err)
			}
		}
		if tr.leafHits.Load() == 0 {
			b.Fatal("no cache hit")
		}
	})
}

// BenchmarkRequestDecision is the per-request decision of a keep-alive
// request exactly as serveOne makes it: the clock, the certificate's expiry
// and revocation lookup (10,000 revoked serials), the staleness check of
// the revocation data, and the route and rule match (4 routes, the
// matching rule a pattern). The issue's target: under 300 ns, no
// allocation.
func BenchmarkRequestDecision(b *testing.B) {
	e := newEnv(b, quiet(), withStaleness(time.Hour, nil, nil), withRoutes(`
routes:
  - name: admin
    host: api.example.org
    path_prefix: /admin
    upstream: UPSTREAM
    allow: ["spiffe://example.org/admin/alice"]
  - name: reports-read
    path_prefix: /reports/
    methods: [GET, HEAD]
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
  - name: billing
    path_prefix: /v1/billing
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/billing", "spiffe://example.org/team/finance/*"]
  - name: catchall
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/frontend"]
`))
	serials := make([]string, 10000)
	for i := range serials {
		serials[i] = fmt.Sprintf("%x", 1_000_003*(i+1))
	}
	e.revoked.Update(revocation.NewSet(1, e.clock.Now(), serials...))
	leaf := e.ca.Issue(b, testca.WithID("spiffe://example.org/team/finance/carol"))
	cs := tls.ConnectionState{PeerCertificates: leaf.Chain, Version: tls.VersionTLS13}
	p := newPeer(&cs, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, leafInfoFor(e.gw.rt.Load(), &cs))
	g := e.gw
	b.ReportAllocs()
	for b.Loop() {
		rt := g.rt.Load()
		now := g.clock.Now()
		if g.checkLive(p, now) != "" || g.checkStale(now) {
			b.Fatal("not live")
		}
		if d := rt.cfg.policy.Authorize("api.example.org:8443", "POST", "/v1/billing/pay", p.id); !d.Allowed || d.Route.Name != "billing" {
			b.Fatalf("decision %+v", d)
		}
	}
}

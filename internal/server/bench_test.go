package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

// benchClients is the number of concurrent keep-alive clients in
// BenchmarkEnroll, whatever GOMAXPROCS is: a server sees many enrollments
// at once, and the store's group commit needs them.
const benchClients = 32

// BenchmarkEnroll measures POST /v1/enroll over real TLS on 127.0.0.1:
// token + CSR -> checks -> signature -> durable record (SQLite WAL,
// synchronous=FULL, group commit) -> certificate, with benchClients
// keep-alive HTTP/1.1 clients. Tokens, keys and CSRs are made before the
// timer starts and connections are open: it measures enrollments, not
// handshakes or client key generation. Client and server share the
// process, so its figure is a lower bound of the server's; the load run
// (scripts/bench-enroll.sh) pins the server to one core instead.
//
// BenchmarkEnroll/baseline is the same HTTPS round trip (same TLS config,
// same request and answer sizes) to a handler that does nothing: the
// difference is what the CA work costs.
func BenchmarkEnroll(b *testing.B) {
	b.Run("enroll", func(b *testing.B) {
		e := newBenchEnv(b)
		bodies := e.prepare(b, b.N)
		runEnrollBench(b, e.url, e.roots, bodies)
	})
	b.Run("baseline", func(b *testing.B) {
		e := newBenchEnv(b)
		// A real answer, so the baseline writes as many bytes.
		answer := e.enrollOnce(b)
		bodies := e.prepare(b, b.N)
		url := e.serveTrivial(b, answer)
		runEnrollBench(b, url, e.roots, bodies)
	})
}

// benchEnv is a server with a real CA and a real SQLite store in a
// temporary directory (internal/testenv), on the real clock (tokens must
// not expire while the benchmark runs).
type benchEnv struct {
	authz *ca.Service
	srv   *server.Server
	url   string
	roots *x509.CertPool
	td    string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	te := testenv.Start(b, testenv.WithServiceOptions(func(o *ca.ServiceOptions) { o.TokenTTL = time.Hour }))
	return &benchEnv{authz: te.Authority, srv: te.Server, url: te.URL, roots: te.Roots, td: te.TrustDomain}
}

// prepare mints n tokens (concurrently, so the store group-commits them)
// and makes a key and CSR for each; it returns the encoded request bodies.
func (e *benchEnv) prepare(b *testing.B, n int) [][]byte {
	b.Helper()
	bodies := make([][]byte, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := identity.MustParse("spiffe://" + e.td + "/bench/client")
				tok, err := e.authz.CreateToken(context.Background(), "spiffe://"+e.td+"/admin/bench", id, 0)
				if err != nil {
					errs <- err
					return
				}
				key, _ := keytype.Generate(keytype.ECDSAP256)
				req, err := csr.Create(key, id)
				if err != nil {
					errs <- err
					return
				}
				bodies[i], _ = json.Marshal(wire.EnrollRequest{Token: tok.String(), CSR: string(req)})
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return bodies
}

// enrollOnce enrolls one client and returns the server's answer.
func (e *benchEnv) enrollOnce(b *testing.B) []byte {
	b.Helper()
	c := benchClient(e.roots)
	defer c.CloseIdleConnections()
	answer, err := post(c, e.url, e.prepare(b, 1)[0])
	if err != nil {
		b.Fatal(err)
	}
	return answer
}

// serveTrivial serves, with the server's own TLS config, a handler that
// reads the request and writes answer with status 201, and returns its URL.
func (e *benchEnv) serveTrivial(b *testing.B, answer []byte) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{
		TLSConfig: e.srv.TLSConfig(),
		ErrorLog:  log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write(answer)
		}),
	}
	go hs.ServeTLS(ln, "", "")
	b.Cleanup(func() { hs.Close() })
	return "https://" + ln.Addr().String()
}

func benchClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true,
	}}
}

// post sends one enrollment and returns the answer; anything but 201 is
// an error.
func post(c *http.Client, url string, body []byte) ([]byte, error) {
	resp, err := c.Post(url+"/v1/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, &unexpected{resp.Status, answer}
	}
	return answer, nil
}

type unexpected struct {
	status string
	body   []byte
}

func (u *unexpected) Error() string { return u.status + ": " + string(u.body) }

// runEnrollBench sends bodies over benchClients warmed-up keep-alive
// connections, b.N in all, and reports enrollments/s and latency
// quantiles.
func runEnrollBench(b *testing.B, url string, roots *x509.CertPool, bodies [][]byte) {
	b.Helper()
	clients := make([]*http.Client, benchClients)
	for i := range clients {
		clients[i] = benchClient(roots)
		defer clients[i].CloseIdleConnections()
		resp, err := clients[i].Get(url + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var nextClient, next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	// RunParallel starts parallelism * GOMAXPROCS goroutines: one per
	// client, rounded up (the extra ones share connections).
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchClients + procs - 1) / procs)
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[int(nextClient.Add(1)-1)%len(clients)]
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			t0 := time.Now()
			if _, err := post(c, url, body); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	// CPU time of the whole process (clients included) per enrollment:
	// unlike the rate, it does not depend on what else the machine runs.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrollments/s")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[(len(lat)*99+99)/100-1].Microseconds())/1000, "p99-ms")
	}
}

// processCPU is the user + system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/certgate/certgate/internal/bench"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// BenchmarkRenew measures POST /v1/renew over real TLS on 127.0.0.1, each
// renewal on a NEW connection authenticated by the agent's current
// certificate: handshake -> the certificate's record checked (known, not
// revoked, not expired) -> CSR for a new key -> signature -> durable record
// (SQLite WAL, synchronous=FULL, group commit) -> certificate. benchClients
// renewals are in flight at once; agents (certificates, keys, CSRs) are
// made before the timer starts. It uses the load generator's renewal
// client (internal/bench), which checks every answer.
//
//   - full: a full TLS 1.3 handshake per renewal (the server signs, and
//     verifies the client's chain and CertificateVerify).
//   - resumed: each agent resumes the session it opened with its current
//     certificate before the timer started (one GET /healthz): the
//     handshake skips certificates and signatures.
//   - full-baseline, resumed-baseline: the same connections and request
//     bodies, with the server's own TLS config (client certificates
//     verified against the roots), to a handler that only answers with a
//     renewal answer made in advance for that agent: the difference is what
//     the renewal itself costs.
//
// Client and server share the process, so cpu-µs/op counts both;
// scripts/bench-renew.sh pins the server to one core instead. Run with a
// fixed count (b.N agents are enrolled first):
//
//	go test -run '^$' -bench BenchmarkRenew -benchtime 2000x -cpu 1 ./internal/server
func BenchmarkRenew(b *testing.B) {
	for _, resume := range []bool{false, true} {
		mode := "full"
		if resume {
			mode = "resumed"
		}
		b.Run(mode, func(b *testing.B) {
			e := newBenchEnv(b)
			agents := e.agents(b, b.N)
			runRenewBench(b, e.url, e, agents, resume)
		})
		b.Run(mode+"-baseline", func(b *testing.B) {
			e := newBenchEnv(b)
			agents := e.agents(b, b.N)
			url := e.serveRenewBaseline(b, agents)
			runRenewBench(b, url, e, agents, resume)
		})
	}
}

// agents issues n client certificates directly (not measured; a renewal
// does not care how its certificate was obtained) and makes a new key and
// CSR for each.
func (e *benchEnv) agents(b *testing.B, n int) []*bench.Agent {
	b.Helper()
	ctx := context.Background()
	out := make([]*bench.Agent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				a, err := e.agent(ctx, i)
				if err != nil {
					once.Do(func() { first = err })
					return
				}
				out[i] = a
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return out
}

func (e *benchEnv) agent(ctx context.Context, i int) (*bench.Agent, error) {
	id := identity.MustParse(fmt.Sprintf("spiffe://%s/bench/agent-%d", e.td, i))
	cur, _ := keytype.Generate(keytype.ECDSAP256)
	next, _ := keytype.Generate(keytype.ECDSAP256)
	iss, err := e.authz.IssueDirect(ctx, ca.Request{PublicKey: cur.Public(), Identity: id}, ca.ClientProfile, store.ObtainedEnroll, id.String())
	if err != nil {
		return nil, err
	}
	req, err := csr.Create(next, id)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(wire.RenewRequest{CSR: string(req)})
	cert := tls.Certificate{Certificate: [][]byte{iss.Cert.Raw, iss.Chain[0].Raw}, PrivateKey: cur, Leaf: iss.Cert}
	return &bench.Agent{Identity: id.String(), Cert: cert, Next: next.Public(), Body: body}, nil
}

// serveRenewBaseline serves, with the server's own TLS config, a handler
// that answers GET /healthz, and POST /v1/renew with a real renewal answer
// made in advance for the agent whose certificate the connection
// presented (issued directly, not measured), and returns its URL.
func (e *benchEnv) serveRenewBaseline(b *testing.B, agents []*bench.Agent) string {
	b.Helper()
	ctx := context.Background()
	answers := make(map[string][]byte, len(agents))
	for _, a := range agents {
		iss, err := e.authz.IssueDirect(ctx, ca.Request{PublicKey: a.Next, Identity: identity.MustParse(a.Identity)}, ca.ClientProfile, store.ObtainedRenew, a.Identity)
		if err != nil {
			b.Fatal(err)
		}
		answers[string(a.Cert.Leaf.Raw)], _ = json.Marshal(wire.EnrollResponse{
			Serial: iss.Record.Serial, Identity: a.Identity, NotAfter: iss.Cert.NotAfter,
			Certificate: string(pemutil.EncodeCertificates(iss.Cert)),
			Chain:       string(pemutil.EncodeCertificates(iss.Chain...)),
			Bundle:      string(pemutil.EncodeCertificates(iss.Roots...)),
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("POST /v1/renew", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(answers[string(r.TLS.PeerCertificates[0].Raw)])
	})
	hs := &http.Server{TLSConfig: e.srv.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0), Handler: mux}
	go hs.ServeTLS(ln, "", "")
	b.Cleanup(func() { hs.Close() })
	return "https://" + ln.Addr().String()
}

// runRenewBench renews every agent once (b.N in all) with benchClients in
// flight, each on a new connection, and reports renewals/s, latency
// quantiles (dial to answer) and the process's CPU per renewal.
func runRenewBench(b *testing.B, url string, e *benchEnv, agents []*bench.Agent, resume bool) {
	b.Helper()
	ctx := context.Background()
	if resume {
		if err := bench.WarmSessions(ctx, url, e.roots, agents, benchClients); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := processCPU(b)
	b.ResetTimer()
	res, err := bench.Renew(ctx, bench.RenewLoad{ServerURL: url, Roots: e.roots, Clients: benchClients, Resume: resume}, agents)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Failed() > 0 {
		b.Fatalf("%d of %d renewals failed: %v %v", res.Failed(), res.Sent, res.Errors, res.ErrorSamples)
	}
	if resume && res.Resumed != res.OK {
		b.Fatalf("%d of %d renewals resumed their session", res.Resumed, res.OK)
	}
	if !resume && res.Resumed != 0 {
		b.Fatalf("%d renewals resumed a session in full-handshake mode", res.Resumed)
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(res.Rate(), "renewals/s")
	b.ReportMetric(float64(res.Latency.Quantile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.Latency.Quantile(0.99).Microseconds())/1000, "p99-ms")
}

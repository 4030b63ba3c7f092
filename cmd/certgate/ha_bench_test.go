package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/bench"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/store/storetest"
)

// benchServer inits a CA on storeURL ("" for SQLite in the directory),
// serves it in-process and returns its URL, the trust bundle and an admin
// client.
func benchServer(b *testing.B, storeURL string) (string, *x509.CertPool, *apiclient.Client, func()) {
	b.Helper()
	b.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(b.TempDir(), "ca")
	args := []string{"init", "--dir", dir, "--trust-domain", "example.org", "--listen", "127.0.0.1:0"}
	if storeURL != "" {
		args = append(args, "--store", storeURL)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 0 {
		b.Fatalf("certgate init: %s", errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "127.0.0.1:0", []byte(testPassphrase), func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("server: %v", err)
	}
	cert, roots, _, err := cadir.AdminCredentials(dir)
	if err != nil {
		b.Fatal(err)
	}
	u := "https://" + addr
	admin, err := apiclient.New(apiclient.Options{ServerURL: u, Roots: roots, Certificate: &cert, Timeout: 60 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return u, roots, admin, func() {
		admin.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("server: %v", err)
		}
	}
}

// BenchmarkIssuanceStores measures certificates issued per second through
// the real server API (TLS, token redemption, CSR checks, signature,
// durable record with its audit entry) with 32 clients, on SQLite and on
// PostgreSQL in the same run. Both servers run side by side; the b.N
// enrollments per store are sent in five rounds that alternate between
// them (SQLite first, then PostgreSQL first, ...), so a change in the load
// of a shared machine weighs on both alike. Tokens and CSRs are prepared
// before the clock starts. It reports each store's rate and p99, and the
// ratio. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench BenchmarkIssuanceStores -benchtime 3000x ./cmd/certgate
func BenchmarkIssuanceStores(b *testing.B) {
	type side struct {
		name    string
		url     string
		roots   *x509.CertPool
		work    []bench.Enrollment
		ok      int
		elapsed time.Duration
		lat     bench.Histogram
	}
	sides := []*side{{name: "sqlite"}, {name: "postgres"}}
	const rounds = 5
	per := max(1, b.N/rounds)
	ctx := context.Background()
	for _, sd := range sides {
		storeURL := ""
		if sd.name == "postgres" {
			storeURL = storetest.PostgresURL(b)
		}
		u, roots, admin, stop := benchServer(b, storeURL)
		defer stop()
		sd.url, sd.roots = u, roots
		var err error
		sd.work, err = bench.Prepare(ctx, admin, bench.PrepareOptions{Count: per * rounds, TrustDomain: "example.org"})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for r := range rounds {
		for k := range sides {
			sd := sides[(r+k)%len(sides)]
			res, err := bench.Enroll(ctx, bench.EnrollLoad{ServerURL: sd.url, Roots: sd.roots, Clients: 32}, sd.work[r*per:(r+1)*per])
			if err != nil {
				b.Fatal(err)
			}
			if n := res.Failed(); n > 0 {
				b.Fatalf("%s: %d of %d enrollments failed: %v", sd.name, n, res.Sent, res.ErrorSamples)
			}
			sd.ok += res.OK
			sd.elapsed += res.Elapsed
			sd.lat.Merge(res.Latency)
		}
	}
	b.StopTimer()
	rate := func(sd *side) float64 { return float64(sd.ok) / sd.elapsed.Seconds() }
	for _, sd := range sides {
		b.ReportMetric(rate(sd), sd.name+"-certs/s")
		b.ReportMetric(float64(sd.lat.Quantile(0.99).Microseconds())/1000, sd.name+"-p99-ms")
	}
	b.ReportMetric(rate(sides[1])/rate(sides[0]), "postgres/sqlite")
	b.ReportMetric(0, "ns/op") // wall time per op mixes both stores: not meaningful
}

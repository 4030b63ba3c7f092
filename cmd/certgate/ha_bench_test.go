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
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/loadgen"
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
// PostgreSQL in the same run, and logs the ratio. Tokens and CSRs are
// prepared before the clock starts. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench BenchmarkIssuanceStores -benchtime 3000x ./cmd/certgate
func BenchmarkIssuanceStores(b *testing.B) {
	rates := map[string]float64{}
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			storeURL := ""
			if kind == "postgres" {
				storeURL = storetest.PostgresURL(b)
			}
			u, roots, admin, stop := benchServer(b, storeURL)
			defer stop()
			ctx := context.Background()
			work, err := loadgen.Prepare(ctx, admin, loadgen.PrepareOptions{Count: b.N, TrustDomain: "example.org"})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			res, err := loadgen.Run(ctx, loadgen.Options{ServerURL: u, Roots: roots, Clients: 32}, work)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if n := res.Failed(); n > 0 {
				b.Fatalf("%d of %d enrollments failed: %v", n, res.Sent, res.ErrorSamples)
			}
			b.ReportMetric(res.Rate(), "certs/s")
			b.ReportMetric(float64(res.Latency.Quantile(0.99).Microseconds())/1000, "p99-ms")
			rates[kind] = res.Rate()
		})
	}
	if rates["sqlite"] > 0 && rates["postgres"] > 0 {
		b.Logf("issuance: SQLite %.0f certificates/s, PostgreSQL %.0f/s: PostgreSQL/SQLite = %.2f",
			rates["sqlite"], rates["postgres"], rates["postgres"]/rates["sqlite"])
	}
}

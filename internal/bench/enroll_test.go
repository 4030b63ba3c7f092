package bench

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Buckets() != nil {
		t.Fatal("empty histogram is not all zero")
	}
	// 100 samples, 1 ms .. 100 ms, added out of order.
	for i := 100; i >= 1; i-- {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0, time.Millisecond}, {0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond},
		{0.99, 99 * time.Millisecond}, {0.999, 100 * time.Millisecond}, {1, 100 * time.Millisecond},
	} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %s, want %s", c.q, got, c.want)
		}
	}
	if got := h.Mean(); got != 50500*time.Microsecond {
		t.Errorf("Mean = %s, want 50.5ms", got)
	}
	var other Histogram
	other.Add(3 * time.Second)
	h.Merge(&other)
	if h.Count() != 101 || h.Max() != 3*time.Second {
		t.Fatalf("after merge: count %d max %s", h.Count(), h.Max())
	}
	var got []string
	for _, b := range h.Buckets() {
		got = append(got, b.High.String()+":"+itoa(b.Count))
	}
	// (0,1ms] 1, (1,2] 1, (2,5] 3, (5,10] 5, (10,20] 10, (20,50] 30, (50,100] 50, then empty up to (2s,5s] 1.
	want := "1ms:1 2ms:1 5ms:3 10ms:5 20ms:10 50ms:30 100ms:50 200ms:0 500ms:0 1s:0 2s:0 5s:1"
	if strings.Join(got, " ") != want {
		t.Fatalf("buckets\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	var out bytes.Buffer
	if err := h.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  <= 100ms         50  49.50% ########################################\n") {
		t.Fatalf("printed histogram:\n%s", out.String())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// fakeServer answers /healthz and /v1/enroll by the token in the body:
// "ok" -> 201 with a certificate, "used" -> 403 token_used, "empty" -> a
// 201 without one, "drop" -> the connection is closed with no answer,
// "slow" -> 201 after 20 ms.
func fakeServer(t *testing.T, h2 bool) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("POST /v1/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Token, CSR string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch req.Token {
		case "slow":
			time.Sleep(20 * time.Millisecond)
			fallthrough
		case "ok":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"serial":"1a","certificate":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}`))
		case "used":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":{"code":"token_used","message":"token was already used"}}`))
		case "empty":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"serial":""}`))
		case "drop":
			panic(http.ErrAbortHandler)
		default:
			http.Error(w, "unknown token", http.StatusTeapot)
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func work(tokens ...string) []Enrollment {
	out := make([]Enrollment, len(tokens))
	for i, tok := range tokens {
		b, _ := json.Marshal(map[string]string{"token": tok, "csr": "x"})
		out[i] = Enrollment{TokenID: tok, Body: b}
	}
	return out
}

func repeat(tok string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = tok
	}
	return out
}

func TestRunKeepAlive(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		srv, roots := fakeServer(t, h2)
		res, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: roots, Clients: 4, HTTP2: h2}, work(repeat("ok", 200)...))
		if err != nil {
			t.Fatal(err)
		}
		wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		if res.Sent != 200 || res.OK != 200 || res.Failed() != 0 || len(res.Errors) != 0 || res.Latency.Count() != 200 {
			t.Fatalf("h2=%v: %+v", h2, res)
		}
		// One connection per client, opened by the warm-up: no request of
		// the measurement paid for a handshake.
		if res.Connections != 4 || res.Proto != wantProto {
			t.Fatalf("h2=%v: %d connections over %s, want 4 over %s", h2, res.Connections, res.Proto, wantProto)
		}
		if res.Rate() <= 0 || res.Latency.Quantile(0.99) <= 0 {
			t.Fatalf("rate %v p99 %v", res.Rate(), res.Latency.Quantile(0.99))
		}
	}
}

func TestRunCountsErrorsByKind(t *testing.T) {
	srv, roots := fakeServer(t, false)
	tokens := append(repeat("ok", 10), repeat("used", 3)...)
	tokens = append(tokens, "empty", "empty", "drop", "nope")
	res, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: roots, Clients: 3}, work(tokens...))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"403 token_used": 3, KindBadAnswer: 2, KindTransport: 1, "418 http": 1}
	if res.Sent != 17 || res.OK != 10 || res.Failed() != 7 || !equalMaps(res.Errors, want) {
		t.Fatalf("sent %d ok %d errors %v, want 17, 10, %v", res.Sent, res.OK, res.Errors, want)
	}
	if res.ErrorSamples["403 token_used"] != "token was already used" || res.ErrorSamples[KindBadAnswer] != "201 without a serial and a certificate" {
		t.Fatalf("samples %q", res.ErrorSamples)
	}
	// The dropped connection is replaced if its client sends again.
	if res.Connections < 3 || res.Connections > 4 {
		t.Fatalf("%d connections, want 3, plus 1 redial at most", res.Connections)
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, s := range []string{"enrollments  17 sent, 10 ok, 7 failed in ", "clients      3 over HTTP/1.1 keep-alive TLS (",
		"  403 token_used                  3  e.g. token was already used\n"} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("report lacks %q:\n%s", s, out.String())
		}
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRunDurationBound(t *testing.T) {
	srv, roots := fakeServer(t, false)
	start := time.Now()
	res, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: roots, Clients: 2, Duration: 100 * time.Millisecond}, work(repeat("slow", 1000)...))
	if err != nil {
		t.Fatal(err)
	}
	// Each client sends about 100ms/20ms = 5 before the bound.
	if res.Sent < 2 || res.Sent > 40 || res.OK != res.Sent || time.Since(start) > 5*time.Second {
		t.Fatalf("sent %d ok %d in %s, want about 10", res.Sent, res.OK, res.Elapsed)
	}
}

func TestRunCancelled(t *testing.T) {
	srv, roots := fakeServer(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	res, err := Enroll(ctx, EnrollLoad{ServerURL: srv.URL, Roots: roots, Clients: 2}, work(repeat("slow", 1000)...))
	if !errors.Is(err, context.Canceled) || res == nil || res.Sent >= 1000 {
		t.Fatalf("err %v, result %+v", err, res)
	}
	if res.Errors[KindTransport] != 0 {
		t.Fatalf("a cancelled request counted as a transport error: %v", res.Errors)
	}
}

func TestRunBadOptions(t *testing.T) {
	srv, _ := fakeServer(t, false)
	for _, c := range []struct {
		o    EnrollLoad
		work []Enrollment
		want string
	}{
		{EnrollLoad{ServerURL: "http://127.0.0.1:1"}, work("ok"), `bench: server URL "http://127.0.0.1:1" must be an https:// URL`},
		{EnrollLoad{ServerURL: srv.URL}, nil, "bench: nothing to send"},
		{EnrollLoad{ServerURL: srv.URL, Clients: -1}, work("ok"), "bench: clients -1: need at least one"},
		{EnrollLoad{ServerURL: srv.URL, Duration: -time.Second}, work("ok"), "bench: duration -1s is negative"},
	} {
		if _, err := Enroll(context.Background(), c.o, c.work); err == nil || err.Error() != c.want {
			t.Errorf("Enroll(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
	// A server we do not trust fails the warm-up, before anything is
	// measured.
	_, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: x509.NewCertPool()}, work("ok"))
	if err == nil || !strings.HasPrefix(err.Error(), "bench: warm-up: ") || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("untrusted server: %v", err)
	}
}

func TestPrepareRefusesNothing(t *testing.T) {
	if _, err := Prepare(context.Background(), nil, PrepareOptions{Count: 0, TrustDomain: "example.org"}); err == nil || err.Error() != "bench: count 0: need at least one enrollment" {
		t.Fatalf("Prepare(0) = %v", err)
	}
	_, err := Prepare(context.Background(), nil, PrepareOptions{Count: 1, TrustDomain: "Example.org"})
	want := `bench: invalid SPIFFE ID "spiffe://Example.org/bench/client-0": trust domain "Example.org" has invalid character 'E' (lowercase letters, digits, '.', '-', '_' only)`
	if err == nil || err.Error() != want {
		t.Fatalf("Prepare with a bad trust domain = %v, want %s", err, want)
	}
}

func TestRunServerCPU(t *testing.T) {
	srv, roots := fakeServer(t, false)
	var calls int
	cpu := func() (time.Duration, error) {
		calls++
		return time.Duration(calls) * 700 * time.Millisecond, nil
	}
	res, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: roots, Clients: 2, ServerCPU: cpu}, work(repeat("ok", 10)...))
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || res.ServerCPU != 700*time.Millisecond {
		t.Fatalf("%d calls, server CPU %s; want 2 calls, 700ms", calls, res.ServerCPU)
	}
	var out bytes.Buffer
	res.Print(&out)
	if !strings.Contains(out.String(), "server CPU   700ms, ") || !strings.Contains(out.String(), ": 70ms per enrollment, 14 enrollments per CPU-second\n") {
		t.Fatalf("report:\n%s", out.String())
	}
	failing := func() (time.Duration, error) { return 0, errors.New("bench: no such process") }
	if _, err := Enroll(context.Background(), EnrollLoad{ServerURL: srv.URL, Roots: roots, ServerCPU: failing}, work("ok")); err == nil || err.Error() != "bench: no such process" {
		t.Fatalf("failing probe: %v", err)
	}
}

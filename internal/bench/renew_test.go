package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// renewServer is a fake certgate server over mTLS. Its POST /v1/renew
// answers by the agent's identity path: /ok -> 201 with the certificate
// prepared for the agent's new key, /revoked -> 403 revoked, /wrongkey ->
// 201 with a certificate for another key, /drop -> connection closed.
type renewServer struct {
	url   string
	roots *x509.CertPool
	ca    *testca.CA

	mu      sync.Mutex
	answers map[string][]byte // by the agent's leaf DER
	conns   int
}

func newRenewServer(t *testing.T) *renewServer {
	t.Helper()
	ca := testca.New(t, "example.org")
	rs := &renewServer{roots: ca.Pool(), ca: ca, answers: map[string][]byte{}}
	srvCert := ca.Issue(t, testca.Server("spiffe://example.org/server")).TLSCertificate()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("POST /v1/renew", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		leaf := r.TLS.PeerCertificates[0]
		switch leaf.URIs[0].Path {
		case "/drop":
			panic(http.ErrAbortHandler)
		case "/revoked":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":{"code":"revoked","message":"certificate is revoked; enroll again with a new token"}}`))
			return
		}
		rs.mu.Lock()
		answer := rs.answers[string(leaf.Raw)]
		rs.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		w.Write(answer)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler:  mux,
		ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{srvCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool(),
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				rs.mu.Lock()
				rs.conns++
				rs.mu.Unlock()
			}
		},
	}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	rs.url = "https://" + ln.Addr().String()
	return rs
}

// agents makes one agent per path, with the answer its renewal gets.
func (rs *renewServer) agents(t *testing.T, paths ...string) []*Agent {
	t.Helper()
	out := make([]*Agent, len(paths))
	for i, p := range paths {
		id := "spiffe://example.org" + p
		cur := rs.ca.Issue(t, testca.WithID(id))
		next := rs.ca.Issue(t, testca.WithID(id))
		a := &Agent{Identity: id, Cert: cur.TLSCertificate(), Next: next.Key.Public(), Body: []byte(`{"csr":"x"}`)}
		if p == "/wrongkey" {
			next = rs.ca.Issue(t, testca.WithID(id))
		}
		answer, _ := json.Marshal(map[string]string{"serial": "1a", "identity": id, "certificate": string(testca.EncodeCerts(next.Cert))})
		rs.mu.Lock()
		rs.answers[string(cur.Cert.Raw)] = answer
		rs.mu.Unlock()
		out[i] = a
	}
	return out
}

func (rs *renewServer) connections() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.conns
}

func repeatPath(p string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = p
	}
	return out
}

func TestRunRenewFullHandshakes(t *testing.T) {
	rs := newRenewServer(t)
	agents := rs.agents(t, repeatPath("/ok", 30)...)
	res, err := Renew(context.Background(), RenewLoad{ServerURL: rs.url, Roots: rs.roots, Clients: 4}, agents)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 30 || res.OK != 30 || res.Resumed != 0 || len(res.Errors) != 0 || res.Latency.Count() != 30 {
		t.Fatalf("%+v", res)
	}
	// One new connection per renewal.
	if n := rs.connections(); n != 30 {
		t.Fatalf("%d connections for 30 renewals", n)
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, s := range []string{"renewals     30 sent, 30 ok, 0 failed in ", "connections  one per renewal, full handshake expected (0 resumed), 4 renewals in flight\n", "rate         ", "(dial to answer)"} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("report lacks %q:\n%s", s, out.String())
		}
	}
}

func TestRunRenewResumed(t *testing.T) {
	rs := newRenewServer(t)
	agents := rs.agents(t, repeatPath("/ok", 20)...)
	_, err := Renew(context.Background(), RenewLoad{ServerURL: rs.url, Roots: rs.roots, Resume: true}, agents)
	if err == nil || err.Error() != "bench: resumed mode needs WarmSessions first" {
		t.Fatalf("resume without sessions: %v", err)
	}
	if err := WarmSessions(context.Background(), rs.url, rs.roots, agents, 4); err != nil {
		t.Fatal(err)
	}
	res, err := Renew(context.Background(), RenewLoad{ServerURL: rs.url, Roots: rs.roots, Clients: 4, Resume: true}, agents)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20 || res.Resumed != 20 || rs.connections() != 40 {
		t.Fatalf("ok %d resumed %d connections %d; want 20, 20, 40 (warm-up included)", res.OK, res.Resumed, rs.connections())
	}
}

func TestRunRenewCountsErrorsByKind(t *testing.T) {
	rs := newRenewServer(t)
	paths := append(repeatPath("/ok", 5), "/revoked", "/revoked", "/wrongkey", "/drop")
	res, err := Renew(context.Background(), RenewLoad{ServerURL: rs.url, Roots: rs.roots, Clients: 3}, rs.agents(t, paths...))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"403 revoked": 2, KindBadAnswer: 1, KindTransport: 1}
	if res.Sent != 9 || res.OK != 5 || !equalMaps(res.Errors, want) {
		t.Fatalf("sent %d ok %d errors %v, want 9, 5, %v", res.Sent, res.OK, res.Errors, want)
	}
	if res.ErrorSamples[KindBadAnswer] != "certificate is not for the new key" {
		t.Fatalf("samples %q", res.ErrorSamples)
	}
	// A server the load generator does not trust: every renewal fails in
	// the handshake.
	other := testca.New(t, "example.org")
	res, err = Renew(context.Background(), RenewLoad{ServerURL: rs.url, Roots: other.Pool(), Clients: 2}, rs.agents(t, "/ok", "/ok"))
	if err != nil || res.Errors[KindTransport] != 2 || !strings.Contains(res.ErrorSamples[KindTransport], "certificate signed by unknown authority") {
		t.Fatalf("untrusted server: %v %v %q", err, res.Errors, res.ErrorSamples)
	}
}

func TestRunRenewBadOptions(t *testing.T) {
	rs := newRenewServer(t)
	agents := rs.agents(t, "/ok")
	for _, c := range []struct {
		o      RenewLoad
		agents []*Agent
		want   string
	}{
		{RenewLoad{ServerURL: "http://127.0.0.1:1"}, agents, `bench: server URL "http://127.0.0.1:1" must be an https:// URL`},
		{RenewLoad{ServerURL: rs.url}, nil, "bench: no agents to renew"},
		{RenewLoad{ServerURL: rs.url, Clients: -1}, agents, "bench: clients -1: need at least one"},
		{RenewLoad{ServerURL: rs.url, Duration: -time.Second}, agents, "bench: duration -1s is negative"},
	} {
		if _, err := Renew(context.Background(), c.o, c.agents); err == nil || err.Error() != c.want {
			t.Errorf("Renew(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
	if _, err := Storm(context.Background(), StormLoad{ServerURL: rs.url, Window: -time.Second}, agents); err == nil || err.Error() != "bench: window -1s is negative" {
		t.Errorf("RunStorm with a negative window: %v", err)
	}
	if _, err := PrepareAgents(context.Background(), nil, AgentOptions{}); err == nil || err.Error() != "bench: count 0: need at least one agent" {
		t.Errorf("PrepareAgents(0): %v", err)
	}
}

func TestRunStorm(t *testing.T) {
	rs := newRenewServer(t)
	agents := rs.agents(t, append(repeatPath("/ok", 40), "/revoked")...)
	window := 400 * time.Millisecond
	start := time.Now()
	res, err := Storm(context.Background(), StormLoad{ServerURL: rs.url, Roots: rs.roots, Window: window, Rand: rand.New(rand.NewPCG(1, 2))}, agents)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The renewals are spread over the window: the run lasts about as long.
	if res.Sent != 41 || res.OK != 40 || res.Errors["403 revoked"] != 1 || res.Clients < 1 || took < window/2 || took > window+5*time.Second {
		t.Fatalf("sent %d ok %d errors %v peak %d in %s", res.Sent, res.OK, res.Errors, res.Clients, took)
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, s := range []string{"storm        41 agents, each renewing once at a random moment of 400ms\n", "renewals     41 sent, 40 ok, 1 failed in ", "in flight at the peak\n", "  403 revoked "} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("report lacks %q:\n%s", s, out.String())
		}
	}
	// Cancelled: no renewal starts after ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err = Storm(ctx, StormLoad{ServerURL: rs.url, Roots: rs.roots, Window: time.Hour}, rs.agents(t, repeatPath("/ok", 20)...))
	if !errors.Is(err, context.DeadlineExceeded) || res.Sent >= 20 {
		t.Fatalf("cancelled storm: %v, sent %d", err, res.Sent)
	}
}

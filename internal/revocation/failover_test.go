package revocation

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/testca"
)

func TestPullerFailsOver(t *testing.T) {
	ca := testca.New(t, "example.org")
	serverLeaf := ca.Issue(t, testca.Server("spiffe://example.org/server"))
	gwLeaf := ca.Issue(t, testca.WithID("spiffe://example.org/gateway/gw1"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"position": 9, "revoked": [{"serial":"ab"}]}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverLeaf.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()
	// A replica that is down: nothing listens on its port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + ln.Addr().String()
	ln.Close()

	p := NewFailoverPuller([]string{down, srv.URL}, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{gwLeaf.TLSCertificate()}},
		time.Second, clock.NewFake(time.Now()), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Fetch(ctx); err == nil || !strings.HasPrefix(err.Error(), `revocation: fetch: Get "`+down+`/v1/revocations": `) {
		t.Fatalf("first fetch: %v", err)
	}
	for range 3 { // the next fetches use the replica that answers, and stay on it
		s, err := p.Fetch(ctx)
		if err != nil || s.Position() != 9 || !s.Contains("ab") {
			t.Fatalf("fetch after failover: %v, %v", s, err)
		}
	}
	if _, err := NewFailoverPuller(nil, &tls.Config{}, time.Second, clock.Real{}, slog.New(slog.DiscardHandler)).Fetch(ctx); err == nil || err.Error() != "revocation: no server URL" {
		t.Fatalf("no URL: %v", err)
	}
}

func TestAddedSkipsHeartbeats(t *testing.T) {
	now := time.Now()
	s1 := NewSet(1, now, "a", "b")
	s2 := s1.Touched(now.Add(time.Second))
	if got := Added(s1, s2); got != nil {
		t.Fatalf("Added after a heartbeat = %v", got)
	}
	s3 := s2.With(2, now, "c")
	if got := Added(s2, s3); len(got) != 1 || got[0] != "c" {
		t.Fatalf("Added after a revocation = %v", got)
	}
	if got := Added(nil, s1); len(got) != 2 {
		t.Fatalf("Added from nothing = %v", got)
	}
}

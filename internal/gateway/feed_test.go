package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/feed"
	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// TestBrokenFeedKeepsKnownSetThenFailsClosed: a gateway whose feed sends a
// malformed event, and then refuses it (as the server refuses an identity
// that is not a gateway's), keeps enforcing the set it had, applies
// nothing from the bad line, says why in its log, and fails closed once
// the set is older than max_staleness.
func TestBrokenFeedKeepsKnownSetThenFailsClosed(t *testing.T) {
	opLog := &lockedBuffer{}
	e := newEnv(t, withStaleness(time.Minute, nil, opLog))
	victim := e.ca.Issue(t, withSvc("victim"))
	bystander := e.ca.Issue(t, withSvc("bystander"))

	var requests atomic.Int32
	serverLeaf := e.ca.Issue(t, testca.Server("spiffe://example.org/server"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Query().Has("after") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":{"code":"forbidden","message":"the change feed is for gateway identities"}}`)
			return
		}
		fmt.Fprintf(w, `{"type":"snapshot","position":5,"revoked":[{"serial":%q}]}`+"\n", revocation.SerialOf(victim.Cert))
		io.WriteString(w, `{"type":"revoke","position":6,"serial":"not hex"}`+"\n")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverLeaf.TLSCertificate()}}
	srv.StartTLS()
	defer srv.Close()

	gwLeaf := e.ca.Issue(t, testca.WithID("spiffe://example.org/gateway/gw1"))
	f, err := feed.NewFollower(feed.FollowerOptions{
		URLs: []string{srv.URL}, Clock: e.clock, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		TLSConfig: &tls.Config{RootCAs: e.ca.Pool(), Certificates: []tls.Certificate{gwLeaf.TLSCertificate()}},
		Log:       slog.New(slog.NewTextHandler(opLog, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, e.revoked); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for requests.Load() < 3 || !strings.Contains(opLog.String(), "answered 403") {
		if time.Now().After(deadline) {
			t.Fatalf("%d feed requests; log:\n%s", requests.Load(), opLog.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The snapshot holds; the bad event was not applied.
	s := e.revoked.Load()
	if s.Position() != 5 || s.Len() != 1 || !s.Contains(revocation.SerialOf(victim.Cert)) {
		t.Fatalf("set at position %d with %v", s.Position(), s.Serials())
	}
	for _, want := range []string{`feed: bad message: revocation: serial \"not hex\" is not hexadecimal`, `the change feed is for gateway identities`} {
		if !strings.Contains(opLog.String(), want) {
			t.Fatalf("log lacks %s:\n%s", want, opLog.String())
		}
	}
	if status, _ := getJSON(t, e.client(bystander, false), mustReq(t, e.url("/x"))); status != 200 {
		t.Fatalf("bystander within max_staleness: %d", status)
	}
	e.refusedWith(victim, false, ReasonRevoked)
	e.clock.Advance(time.Minute + time.Second)
	if status, body := getJSON(t, e.client(bystander, false), mustReq(t, e.url("/x"))); status != 503 || body["error"].(map[string]any)["code"] != "revocation_stale" {
		t.Fatalf("bystander past max_staleness: %d %v", status, body)
	}
	e.refusedWith(victim, false, ReasonRevoked)
}

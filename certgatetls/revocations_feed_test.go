package certgatetls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// By default a certgatetls server follows the change feed: a revocation
// is in its set within a second of the revoke call returning, with no
// refresh; the revoked client's keep-alive connection gets 403 on its next
// request, and its next handshake, resumed or not, is refused.
func TestServerConfigFeedRevocation(t *testing.T) {
	s := newServiceMode(t, certgatetls.RevocationAuto)
	if s.revs.Mode() != certgatetls.RevocationFeed {
		t.Fatalf("mode %q, want the feed", s.revs.Mode())
	}
	mobile, serial := s.d.issueTLS(t, "/svc/mobile", ca.ClientProfile)
	c := s.client(t, &mobile)
	s.get(t, c)
	if err := s.d.revoke(serial); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for s.revs.Check(mobile.Leaf) == nil {
		if time.Since(revoked) > time.Second {
			t.Fatal("the revocation did not reach the set within 1 s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("revocation in the set %s after the revoke call returned", time.Since(revoked).Round(time.Microsecond))

	wantRevokedOnLiveConn(t, c, s.url, serial)
	c.CloseIdleConnections()
	got := s.refused(t, c)
	if want := "certgatetls: client certificate is revoked: serial " + serial; got["error"] != want || got["resumed"] != "true" {
		t.Fatalf("resumed handshake: refusal = %v, want %q", got, want)
	}
	if got := s.refused(t, s.client(t, &mobile)); got["resumed"] != "false" || !strings.Contains(got["error"], "is revoked") {
		t.Fatalf("full handshake: refusal = %v", got)
	}
	// Others are still let in.
	billing, _ := s.d.issueTLS(t, "/svc/billing", ca.ClientProfile)
	s.get(t, s.client(t, &billing))
}

// Staleness works as with pulling: the feed's heartbeats confirm the set,
// so a set older than MaxStaleness (here: the clock jumped) fails every
// check only until the next heartbeat.
func TestFeedHeartbeatsKeepSetFresh(t *testing.T) {
	s := newServiceMode(t, certgatetls.RevocationFeed)
	billing, _ := s.d.issueTLS(t, "/svc/billing", ca.ClientProfile)
	s.get(t, s.client(t, &billing))
	stale := false
	// A heartbeat landing between the jump and the check would confirm the
	// set at once; jump again until the check sees the gap.
	for i := 0; i < 5 && !stale; i++ {
		s.clock.Advance(certgatetls.DefaultMaxStaleness + time.Minute)
		err := s.revs.Check(billing.Leaf)
		stale = errors.Is(err, certgatetls.ErrRevocationStale)
		if stale && !strings.HasPrefix(err.Error(), "certgatetls: revocation data is stale: last refreshed 6m0s ago (limit 5m0s)") {
			t.Fatalf("stale check: %v", err)
		}
	}
	if !stale {
		t.Fatal("the set never went stale after the clock jumped past MaxStaleness")
	}
	// The server heartbeats every 2 s.
	for deadline := time.Now().Add(5 * time.Second); s.revs.Check(billing.Leaf) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat confirmed the set: %v", s.revs.Check(billing.Leaf))
		}
	}
	if age := s.clock.Now().Sub(s.revs.Updated()); age != 0 {
		t.Fatalf("set confirmed %s before now, want at the heartbeat (fake clock)", age)
	}
	s.get(t, s.client(t, &billing))
}

// A server without the change feed answers GET /v1/feed with 404: by
// default the set is then pulled; asking for the feed fails clearly.
func TestRevocationsWithoutFeed(t *testing.T) {
	d := newDemo(t)
	dir, _, err := d.issueDir("svc", "/gateway/svc", ca.GatewayProfile)
	if err != nil {
		t.Fatal(err)
	}
	src, err := certgatetls.NewSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// An older server: revocations, but no feed.
	key, _ := keytype.Generate(keytype.ECDSAP256)
	iss, err := d.Authority.IssueDirect(context.Background(), ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/server"),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca.ServerProfile, store.ObtainedServer, "test")
	if err != nil {
		t.Fatal(err)
	}
	old := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/revocations" || len(r.TLS.PeerCertificates) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"not_found","message":"no such endpoint"}}`)
			return
		}
		fmt.Fprint(w, `{"position":7,"revoked":[{"serial":"0A0b","identity":"spiffe://example.org/svc/x","reason":1,"not_after":"2099-01-01T00:00:00Z"}]}`)
	}))
	old.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, Certificates: []tls.Certificate{{Certificate: [][]byte{iss.Cert.Raw, iss.Chain[0].Raw}, PrivateKey: key}}}
	old.StartTLS()
	defer old.Close()

	revs, err := certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{ServerURL: old.URL, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer revs.Close()
	if revs.Mode() != certgatetls.RevocationPull || revs.Len() != 1 {
		t.Fatalf("mode %q with %d entries, want pull with 1", revs.Mode(), revs.Len())
	}
	_, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{ServerURL: old.URL, Source: src, Mode: certgatetls.RevocationFeed})
	want := "certgatetls: the server has no change feed (" + old.URL + "/v1/feed answered 404 Not Found); pull instead with RevocationPull"
	if err == nil || err.Error() != want {
		t.Fatalf("feed from an older server:\n got %v\nwant %s", err, want)
	}
}

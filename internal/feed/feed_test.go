package feed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/revocation"
)

// The follower against the real server half, over TLS with a real store,
// is tested in internal/server/feedserver; here are the protocol and the
// follower's refusals of what a broken server sends.

// lastSet keeps the last set a follower applied.
type lastSet struct{ s *revocation.Set }

func (l *lastSet) Update(s *revocation.Set) { l.s = s }

func TestParseMessage(t *testing.T) {
	for in, want := range map[string]string{
		`not json`:                           "feed: bad message: invalid character 'o' in literal null (expecting 'u')",
		`{"type":"revoke","position":3}`:     "feed: bad message: revoke without serial or position",
		`{"type":"gossip","position":3}`:     `feed: bad message: unknown type "gossip"`,
		`{"type":"heartbeat","position":-1}`: "feed: bad message: negative position -1",
	} {
		if _, err := ParseMessage([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("ParseMessage(%s) = %v, want %s", in, err, want)
		}
	}
}

// TestBrokenServer: a follower refuses a stream whose events come before a
// snapshot or do not parse, and keeps what it had.
func TestBrokenServer(t *testing.T) {
	var body atomic.Value
	body.Store(`{"type":"revoke","position":1,"serial":"ab"}` + "\n")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body.Load().(string))
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	f, _ := NewFollower(FollowerOptions{URLs: []string{srv.URL}, TLSConfig: &tls.Config{RootCAs: pool}, Clock: clock.Real{}})
	rec := &lastSet{}
	got, err := f.stream(context.Background(), srv.Client(), srv.URL, rec)
	if err == nil || err.Error() != "feed: bad message: event before snapshot" || !got {
		t.Fatalf("got %v %v", got, err)
	}
	body.Store(`{"type":"snapshot","position":1,"revoked":[{"serial":"zz"}]}` + "\n")
	_, err = f.stream(context.Background(), srv.Client(), srv.URL, rec)
	if err == nil || !strings.HasPrefix(err.Error(), "feed: bad message: ") || rec.s != nil {
		t.Fatalf("bad serial: %v, set %v", err, rec.s)
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"type":"snapshot","position":12,"revoked":[{"serial":"ab","identity":"spiffe://example.org/x","reason":1,"not_after":"2026-11-27T00:00:00Z"}]}`))
	f.Add([]byte(`{"type":"revoke","position":13,"serial":"ab","reason":1}`))
	f.Add([]byte(`{"type":"heartbeat","position":13,"time":"2026-11-27T00:00:00Z"}`))
	f.Add([]byte(`{"type":"revoke","position":0}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := ParseMessage(line)
		if err != nil {
			return
		}
		if m.Position < 0 || (m.Type == TypeRevoke && (m.Serial == "" || m.Position == 0)) {
			t.Fatalf("accepted %+v", m)
		}
		// A follower applies whatever parses without panicking.
		fl, _ := NewFollower(FollowerOptions{URLs: []string{"https://x"}, TLSConfig: &tls.Config{}, Clock: clock.Real{}})
		fl.synced = true
		fl.set = revocation.NewSet(0, time.Now())
		_ = fl.apply(m, &lastSet{})
	})
}

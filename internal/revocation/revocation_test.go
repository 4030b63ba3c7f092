package revocation

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/testca"
)

func TestCanonicalSerial(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "0A:1b:ff", want: "a1bff"},
		{in: "00ff", want: "ff"},
		{in: "0", want: "0"},
		{in: "DEADBEEF", want: "deadbeef"},
		{in: "", err: "revocation: empty serial"},
		{in: "12g4", err: `revocation: serial "12g4" is not hexadecimal`},
		{in: string(make([]byte, 129)), err: "revocation: serial longer than 128 characters"},
	} {
		got, err := CanonicalSerial(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("CanonicalSerial(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalSerial(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSerialOfMatchesCanonical(t *testing.T) {
	ca := testca.New(t, "example.org")
	leaf := ca.Issue(t)
	hexBytes := ""
	for _, b := range leaf.Cert.SerialNumber.Bytes() {
		hexBytes += string("0123456789ABCDEF"[b>>4]) + string("0123456789ABCDEF"[b&15]) + ":"
	}
	c, err := CanonicalSerial(hexBytes[:len(hexBytes)-1])
	if err != nil || c != SerialOf(leaf.Cert) {
		t.Fatalf("canonical %q, %v; SerialOf %q", c, err, SerialOf(leaf.Cert))
	}
}

func TestParseSnapshot(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := ParseSnapshot([]byte(`{"position": 7, "revoked": [{"serial":"0AB","identity":"spiffe://example.org/a","reason":1,"not_after":"2026-02-01T00:00:00Z"},{"serial":"ff"}], "extra": true}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Position() != 7 || s.Len() != 2 || !s.Contains("ab") || !s.Contains("ff") || s.Contains("0ab") || !s.Updated().Equal(now) {
		t.Fatalf("set = %+v", s)
	}
	for _, tc := range []struct{ in, err string }{
		{"", "revocation: decode snapshot: EOF"},
		{`{"position": -1}`, "revocation: negative position -1"},
		{`{"position": 1, "revoked": [{"serial": "xyz"}]}`, `revocation: entry 0: serial "xyz" is not hexadecimal`},
		{`{"position": 1, "revoked": [{"serial": ""}]}`, `revocation: entry 0: empty serial`},
		{`{"position": 1} {}`, "revocation: decode snapshot: trailing data after JSON object"},
		{`{"position": "1"}`, "revocation: decode snapshot: json: cannot unmarshal string into Go struct field Revocations.position of type int64"},
	} {
		_, err := ParseSnapshot([]byte(tc.in), now)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseSnapshot(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzParseSnapshot(f *testing.F) {
	f.Add([]byte(`{"position": 7, "revoked": [{"serial":"0AB","identity":"spiffe://example.org/a","reason":1,"not_after":"2026-02-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"position": 0, "revoked": []}`))
	f.Add([]byte(`{"revoked": [{"serial":"00:aa:BB"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSnapshot(data, time.Unix(0, 0))
		if err != nil {
			return
		}
		for _, serial := range s.Serials() {
			c, err := CanonicalSerial(serial)
			if err != nil || c != serial {
				t.Fatalf("serial %q in set is not canonical (%q, %v)", serial, c, err)
			}
		}
	})
}

func TestHolder(t *testing.T) {
	h := NewHolder()
	if h.Revoked("ab") || h.Load().Len() != 0 {
		t.Fatal("new holder not empty")
	}
	var added []string
	h.OnChange(func(old, new *Set) { added = Added(old, new) })
	h.Update(NewSet(1, time.Now(), "ab", "cd"))
	slices.Sort(added)
	if !h.Revoked("ab") || !slices.Equal(added, []string{"ab", "cd"}) {
		t.Fatalf("after update: revoked(ab)=%v added=%v", h.Revoked("ab"), added)
	}
	h.Update(NewSet(2, time.Now(), "cd", "ef"))
	if h.Revoked("ab") || !slices.Equal(added, []string{"ef"}) {
		t.Fatalf("after 2nd update: revoked(ab)=%v added=%v", h.Revoked("ab"), added)
	}
}

type chanUpdater chan *Set

func (c chanUpdater) Update(s *Set) { c <- s }

func TestPullerOverMTLS(t *testing.T) {
	ca := testca.New(t, "example.org")
	serverLeaf := ca.Issue(t, testca.Server("spiffe://example.org/server"))
	gwLeaf := ca.Issue(t, testca.WithID("spiffe://example.org/gateway/gw1"))
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/revocations" || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"client certificate required"}}`, http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 2 {
			http.Error(w, `{"error":{"code":"unavailable","message":"store down"}}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"position": 3, "revoked": [{"serial":"0a1b"}]}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverLeaf.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	defer srv.Close()

	clk := clock.NewFake(time.Now())
	p := NewPuller(srv.URL+"/", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{gwLeaf.TLSCertificate()}}, 20*time.Millisecond, clk, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Fetch(ctx)
	want := `revocation: fetch: ` + srv.URL + `/v1/revocations answered 503 Service Unavailable: {"error":{"code":"unavailable","message":"store down"}}`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	up := make(chanUpdater, 10)
	done := make(chan error)
	go func() { done <- p.Run(ctx, up) }()
	s := <-up
	if !s.Contains("a1b") || s.Position() != 3 {
		t.Fatalf("set = %v", s.Serials())
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}

	// Without a client certificate the server refuses the handshake.
	p2 := NewPuller(srv.URL, &tls.Config{RootCAs: ca.Pool()}, time.Second, clk, slog.New(slog.DiscardHandler))
	if _, err := p2.Fetch(context.Background()); err == nil {
		t.Fatal("fetch without client certificate succeeded")
	}
}

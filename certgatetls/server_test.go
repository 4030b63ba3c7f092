package certgatetls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/testca"
)

func newDemo(t *testing.T) *demo {
	t.Helper()
	d, err := startDemo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// issueTLS issues a certificate for path with profile from the real CA,
// and returns it with its serial.
func (d *demo) issueTLS(t *testing.T, path string, p ca.Profile) (tls.Certificate, string) {
	t.Helper()
	c := d.env.IssueDirect(t, path, p)
	return c, ca.SerialHex(c.Leaf.SerialNumber)
}

// service is a Go HTTPS service on 127.0.0.1 built with ServerConfig, in
// front of a handler that answers with IdentityFromRequest.
type service struct {
	d     *demo
	url   string
	clock *clock.Fake
	logs  *logRecorder
	revs  *certgatetls.Revocations
	extra *testca.CA // a test CA whose root is in the service's bundle
}

// newService pulls revocations, so that refreshes happen when the test
// says so (see revocations_feed_test.go for the feed).
func newService(t *testing.T) *service {
	t.Helper()
	return newServiceMode(t, certgatetls.RevocationPull)
}

func newServiceMode(t *testing.T, mode certgatetls.RevocationMode) *service {
	t.Helper()
	s := &service{d: newDemo(t), clock: clock.NewFake(time.Now().UTC().Truncate(time.Second)), logs: &logRecorder{}}
	s.extra = testca.New(t, "example.org", testca.WithNow(s.clock.Now()))
	dir, _, err := s.d.issueDir("invoices", "/gateway/invoices", ca.GatewayProfile, s.extra.Root)
	if err != nil {
		t.Fatal(err)
	}
	src, err := certgatetls.NewSource(dir, certgatetls.WithClock(s.clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	s.revs, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{
		ServerURL: s.d.ServerURL, Source: src, Refresh: time.Hour, Clock: s.clock, Mode: mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.revs.Close() })
	cfg, err := certgatetls.ServerConfig(certgatetls.ServerOptions{
		Source: src, Revocations: s.revs, Clock: s.clock, Logger: slog.New(s.logs),
		Authorizer: certgatetls.AllowIdentities("spiffe://example.org/svc/billing", "spiffe://example.org/svc/mobile", "spiffe://example.org/svc/extra"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog,
		Handler: certgatetls.RejectRevoked(s.revs, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := certgatetls.IdentityFromRequest(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			io.WriteString(w, id)
		})),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	s.url = "https://" + ln.Addr().String() + "/"
	return s
}

// client returns an HTTP client presenting cert (nil: none) that trusts the
// real root and resumes sessions.
func (s *service) client(t *testing.T, cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(s.d.Root)
	tc := &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get returns the body of a 200 answer, or fails.
func (s *service) get(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %s: %s", resp.Status, b)
	}
	return string(b)
}

// refused makes a request that must fail in the handshake, and returns the
// server's logged refusal.
func (s *service) refused(t *testing.T, c *http.Client) map[string]string {
	t.Helper()
	before := len(s.logs.find(slog.LevelInfo, "certgatetls: refused client"))
	resp, err := c.Get(s.url)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request succeeded with %s", resp.Status)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if l := s.logs.find(slog.LevelInfo, "certgatetls: refused client"); len(l) > before {
			return l[before]
		}
	}
	t.Fatal("no refusal logged")
	return nil
}

func TestServerConfigAcceptsAndRefuses(t *testing.T) {
	s := newService(t)
	now := s.clock.Now()
	billing, _ := s.d.issueTLS(t, "/svc/billing", ca.ClientProfile)
	if got := s.get(t, s.client(t, &billing)); got != "spiffe://example.org/svc/billing" {
		t.Fatalf("identity = %q", got)
	}
	// A client of the extra CA in the bundle, in the trust domain, is fine.
	extra := s.extra.Issue(t, testca.WithID("spiffe://example.org/svc/extra")).TLSCertificate()
	if got := s.get(t, s.client(t, &extra)); got != "spiffe://example.org/svc/extra" {
		t.Fatalf("identity = %q", got)
	}

	foreign := testca.New(t, "other.org").Issue(t, testca.WithID("spiffe://example.org/svc/billing")).TLSCertificate()
	otherTD := s.extra.Issue(t, testca.WithID("spiffe://other.org/svc/billing")).TLSCertificate()
	expiredLeaf := s.extra.Issue(t, testca.WithID("spiffe://example.org/svc/extra"), testca.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	expired := expiredLeaf.TLSCertificate()
	serverOnly, _ := s.d.issueTLS(t, "/svc/billing", ca.ServerProfile)
	intruder, _ := s.d.issueTLS(t, "/svc/intruder", ca.ClientProfile)
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want string
		is   error
	}{
		{"no certificate", nil, "certgatetls: client sent no certificate", certgatetls.ErrNoClientCertificate},
		{"other CA", &foreign, "certgatetls: client certificate does not verify against the trust bundle: x509: certificate signed by unknown authority", certgatetls.ErrUntrusted},
		{"wrong trust domain", &otherTD, `certgatetls: client certificate has no SPIFFE ID of the trust domain: SPIFFE ID outside the trust domain "example.org": spiffe://other.org/svc/billing`, certgatetls.ErrBadIdentity},
		{"expired", &expired, fmt.Sprintf("certgatetls: client certificate is not valid now: expired at %s (now %s)",
			expiredLeaf.Cert.NotAfter.UTC().Format(time.RFC3339), now.Format(time.RFC3339)), certgatetls.ErrExpired},
		{"serverAuth only", &serverOnly, "certgatetls: client certificate is not for client authentication: its extended key usage lacks clientAuth", certgatetls.ErrNotClientAuth},
		{"not allowed", &intruder, "certgatetls: client identity is not allowed: spiffe://example.org/svc/intruder: not in the allowed list", certgatetls.ErrNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.refused(t, s.client(t, tc.cert))
			if got["error"] != tc.want {
				t.Fatalf("refusal:\n got %s\nwant %s", got["error"], tc.want)
			}
		})
	}
}

// A revoked client is refused once the set has refreshed, on a new
// handshake and on a resumed one; a stale set refuses everyone until it
// refreshes again.
func TestServerConfigRevocation(t *testing.T) {
	s := newService(t)
	mobile, serial := s.d.issueTLS(t, "/svc/mobile", ca.ClientProfile)
	c := s.client(t, &mobile)
	s.get(t, c)
	if err := s.d.revoke(serial); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	s.get(t, c) // the service has not refreshed yet
	if err := s.revs.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.revs.Len() != 1 {
		t.Fatalf("revoked set has %d entries", s.revs.Len())
	}
	// The keep-alive connection made before the refresh is still open:
	// RejectRevoked answers its next request with 403.
	wantRevokedOnLiveConn(t, c, s.url, serial)
	c.CloseIdleConnections()
	got := s.refused(t, c)
	if want := "certgatetls: client certificate is revoked: serial " + serial; got["error"] != want || got["identity"] != "spiffe://example.org/svc/mobile" {
		t.Fatalf("refusal = %v, want %q", got, want)
	}
	if got["resumed"] != "true" {
		t.Errorf("the refused handshake was not a resumption: %v", got)
	}
	// A fresh client (no session to resume) is refused as well.
	if got := s.refused(t, s.client(t, &mobile)); got["resumed"] != "false" || !strings.Contains(got["error"], "is revoked") {
		t.Fatalf("refusal = %v", got)
	}

	billing, _ := s.d.issueTLS(t, "/svc/billing", ca.ClientProfile)
	s.clock.Advance(certgatetls.DefaultMaxStaleness + time.Minute)
	got = s.refused(t, s.client(t, &billing))
	if want := "certgatetls: revocation data is stale: last refreshed 6m0s ago (limit 5m0s)"; got["error"] != want {
		t.Fatalf("refusal = %q, want %q", got["error"], want)
	}
	if err := s.revs.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.get(t, s.client(t, &billing))
}

func TestServerConfigOptions(t *testing.T) {
	d := newDemo(t)
	clientDir, _, err := d.issueDir("client", "/svc/billing", ca.ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	clientSrc, err := certgatetls.NewSource(clientDir)
	if err != nil {
		t.Fatal(err)
	}
	defer clientSrc.Close()
	gwDir, _, err := d.issueDir("gw", "/gateway/svc", ca.GatewayProfile)
	if err != nil {
		t.Fatal(err)
	}
	gwSrc, err := certgatetls.NewSource(gwDir)
	if err != nil {
		t.Fatal(err)
	}
	defer gwSrc.Close()
	ok := checker(nil)
	for _, tc := range []struct {
		name string
		o    certgatetls.ServerOptions
		want string
	}{
		{"no source", certgatetls.ServerOptions{Revocations: ok}, "certgatetls: ServerOptions.Source is required"},
		{"no revocations", certgatetls.ServerOptions{Source: gwSrc}, "certgatetls: ServerOptions.Revocations is required (see StartRevocations)"},
		{"client certificate", certgatetls.ServerOptions{Source: clientSrc, Revocations: ok},
			"certgatetls: spiffe://example.org/svc/billing (" + clientDir + ") cannot serve TLS: it lacks the serverAuth extended key usage; enroll this service as a gateway identity (spiffe://example.org/gateway/<name>)"},
		{"bad trust domain", certgatetls.ServerOptions{Source: gwSrc, Revocations: ok, TrustDomain: "Example.org"},
			`certgatetls: trust domain "Example.org" has invalid character 'E' (lowercase letters, digits, '.', '-', '_' only)`},
	} {
		_, err := certgatetls.ServerConfig(tc.o)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error = %v\nwant %s", tc.name, err, tc.want)
		}
	}

	// A service whose identity is not a gateway's cannot read revocations,
	// from the feed or by pulling.
	_, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{ServerURL: d.ServerURL, Source: clientSrc})
	want := `certgatetls: revocations: ` + d.ServerURL + `/v1/feed answered 403 Forbidden: forbidden: identity spiffe://example.org/svc/billing may not follow the change feed: it holds no role; that needs the role admin or auditor or gateway`
	if err == nil || err.Error() != want {
		t.Errorf("StartRevocations with a client identity:\n got %v\nwant %s", err, want)
	}
	_, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{ServerURL: d.ServerURL, Source: clientSrc, Mode: certgatetls.RevocationPull})
	want = `certgatetls: revocations: ` + d.ServerURL + `/v1/revocations answered 403 Forbidden: forbidden: identity spiffe://example.org/svc/billing may not read the revocation list: it holds no role; that needs the role admin or auditor or gateway`
	if err == nil || err.Error() != want {
		t.Errorf("StartRevocations with a client identity, pulling:\n got %v\nwant %s", err, want)
	}
	_, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{ServerURL: d.ServerURL, Source: gwSrc, Mode: "push"})
	if want := `certgatetls: unknown revocation mode "push" (want "feed", "pull" or empty for either)`; err == nil || err.Error() != want {
		t.Errorf("StartRevocations with a bad mode:\n got %v\nwant %s", err, want)
	}
	_, err = certgatetls.StartRevocations(context.Background(), certgatetls.RevocationOptions{Source: clientSrc})
	if err == nil || err.Error() != "certgatetls: revocations need a server URL and a source" {
		t.Errorf("StartRevocations without URL: %v", err)
	}
}

// checker is a RevocationChecker that always answers err.
type checker func() error

func (c checker) Check(*x509.Certificate) error {
	if c == nil {
		return nil
	}
	return c()
}

func TestIdentityFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if _, err := certgatetls.IdentityFromRequest(r); err == nil || err.Error() != "certgatetls: request did not come over TLS" {
		t.Errorf("plain HTTP: %v", err)
	}
	r.TLS = &tls.ConnectionState{}
	if _, err := certgatetls.IdentityFromRequest(r); !errors.Is(err, certgatetls.ErrNoClientCertificate) {
		t.Errorf("no certificate: %v", err)
	}
	leaf := testca.New(t, "example.org").Issue(t, testca.WithoutID(), testca.WithCN("x"))
	r.TLS.PeerCertificates = []*x509.Certificate{leaf.Cert}
	if _, err := certgatetls.IdentityFromRequest(r); err == nil || err.Error() != "certgatetls: client certificate has no SPIFFE ID of the trust domain: certificate has no SPIFFE ID" {
		t.Errorf("no SPIFFE ID: %v", err)
	}
}

func TestRejectRevoked(t *testing.T) {
	leaf := testca.New(t, "example.org").Issue(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		err    error
		status int
		body   string
		close  bool
	}{
		{"plain HTTP", nil, nil, 401, `{"error":{"code":"unauthenticated","message":"certgatetls: client sent no certificate"}}` + "\n", false},
		{"good", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}, nil, 200, "ok", false},
		{"revoked", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}, fmt.Errorf("%w: serial 1", certgatetls.ErrRevoked), 403,
			`{"error":{"code":"revoked","message":"certgatetls: client certificate is revoked: serial 1"}}` + "\n", true},
		{"stale", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert}}, fmt.Errorf("%w: old", certgatetls.ErrRevocationStale), 403,
			`{"error":{"code":"unavailable","message":"certgatetls: revocation data is stale: old"}}` + "\n", true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.TLS = tc.tls
		w := httptest.NewRecorder()
		err := tc.err
		certgatetls.RejectRevoked(checker(func() error { return err }), next).ServeHTTP(w, r)
		if w.Code != tc.status || w.Body.String() != tc.body || (w.Header().Get("Connection") == "close") != tc.close {
			t.Errorf("%s: %d %q %v", tc.name, w.Code, w.Body.String(), w.Header())
		}
	}
}

// Chains that verified once are remembered, but not past the validity of
// any certificate in them, and not after the bundle changes.
func TestServerConfigChainCache(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	clk := clock.NewFake(now)
	shortCA := testca.New(t, "example.org", testca.WithNow(now), testca.WithCALifetime(2*time.Hour)) // intermediate ends in 1 h
	otherCA := testca.New(t, "example.com", testca.WithNow(now))                                     // another root name: a plain "unknown authority"
	dir := t.TempDir()
	writeCreds(t, dir, otherCA.Issue(t, testca.Server("spiffe://example.org/gateway/svc")), append(otherCA.BundlePEM(), shortCA.BundlePEM()...))
	src, err := certgatetls.NewSource(dir, certgatetls.WithPollInterval(0), certgatetls.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg, err := certgatetls.ServerConfig(certgatetls.ServerOptions{Source: src, Revocations: checker(nil), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	leaf := shortCA.Issue(t, testca.WithValidity(now.Add(-time.Hour), now.Add(24*time.Hour)))
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Cert, shortCA.Intermediate}}
	for range 2 {
		if err := cfg.VerifyConnection(cs); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(90 * time.Minute)
	err = cfg.VerifyConnection(cs)
	if !errors.Is(err, certgatetls.ErrUntrusted) || !strings.Contains(err.Error(), "x509: certificate has expired or is not yet valid") {
		t.Fatalf("chain with an expired intermediate: %v", err)
	}

	// A new bundle without the short CA: a chain cached before is refused.
	clk.Set(now)
	if err := cfg.VerifyConnection(cs); err != nil {
		t.Fatal(err)
	}
	writeCreds(t, dir, otherCA.Issue(t, testca.Server("spiffe://example.org/gateway/svc")), otherCA.BundlePEM())
	if changed, err := src.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	err = cfg.VerifyConnection(cs)
	if want := "certgatetls: client certificate does not verify against the trust bundle: x509: certificate signed by unknown authority"; err == nil || err.Error() != want {
		t.Fatalf("after the bundle dropped its CA: %v, want %s", err, want)
	}
}

// wantRevokedOnLiveConn sends a request on c's open keep-alive connection
// and wants RejectRevoked's 403 for serial on that same connection.
func wantRevokedOnLiveConn(t *testing.T, c *http.Client, url, serial string) {
	t.Helper()
	reused := false
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}), "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"error":{"code":"revoked","message":"certgatetls: client certificate is revoked: serial ` + serial + `"}}` + "\n"; resp.StatusCode != 403 || string(body) != want || !reused {
		t.Fatalf("live connection after revocation: %s %q (reused %v), want 403 %q", resp.Status, body, reused, want)
	}
}

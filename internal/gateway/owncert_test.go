package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// expiryMetrics records the gateway's own certificate expiry reports.
type expiryMetrics struct {
	nopMetrics
	mu  sync.Mutex
	got []time.Time
}

func (m *expiryMetrics) CertificateExpiry(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, t)
}

func (m *expiryMetrics) last() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.got) == 0 {
		return time.Time{}
	}
	return m.got[len(m.got)-1]
}

// With Options.Certificate the gateway serves whatever certificate the
// source holds at each handshake and presents it to https upstreams at
// each new upstream connection; open connections are not touched.
func TestCertificateSourceRotation(t *testing.T) {
	ca := testca.New(t, td)
	dir := t.TempDir()
	bundle := ca.WriteBundle(t, dir)

	// An https upstream that wants a client certificate and answers with
	// the serial of the one the gateway presented.
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].SerialNumber.Text(16))
	}))
	up.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	up.StartTLS()
	t.Cleanup(up.Close)
	upCA := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(upCA, testca.EncodeCerts(up.Certificate()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	y := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
bundle: %s
identity:
  dir: %s
  hosts: [localhost, 127.0.0.1]
routes:
  - name: api
    upstream: %s
    upstream_ca: %s
    upstream_client_cert: true
    allow: ["spiffe://example.org/svc/*"]
`, bundle, dir, up.URL, upCA)
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	first := ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw1"))
	var cur atomic.Pointer[tls.Certificate]
	set := func(l *testca.Leaf) {
		c := l.TLSCertificate()
		cur.Store(&c)
	}
	set(first)
	m := &expiryMetrics{}
	gw, err := New(cfg, Options{Certificate: func() *tls.Certificate { return cur.Load() }, Metrics: m, SweepInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if !m.last().Equal(first.Cert.NotAfter) {
		t.Fatalf("expiry reported %s, want %s", m.last(), first.Cert.NotAfter)
	}

	client := ca.Issue(t, testca.WithID("spiffe://example.org/svc/a"))
	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", gw.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost",
			Certificates: []tls.Certificate{client.TLSCertificate()}, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c *tls.Conn, br *bufio.Reader) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return string(b)
	}
	served := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16) }
	serial := func(l *testca.Leaf) string { return l.Cert.SerialNumber.Text(16) }

	kept, keptBR := dial()
	if got := get(kept, keptBR); got != serial(first) || served(kept) != serial(first) {
		t.Fatalf("before rotation: served %s, upstream saw %s; want %s", served(kept), got, serial(first))
	}
	for i := range 2 {
		next := ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw1"), testca.WithValidity(time.Now().Add(-time.Minute), time.Now().Add(time.Duration(48+i)*time.Hour)))
		set(next)
		// The open connection goes on, still on the first certificate.
		get(kept, keptBR)
		if served(kept) != serial(first) {
			t.Fatalf("rotation %d: the open connection changed certificate", i+1)
		}
		// A new connection gets the new certificate.
		c, br := dial()
		if served(c) != serial(next) {
			t.Fatalf("rotation %d: new connection served %s, want %s", i+1, served(c), serial(next))
		}
		// A new upstream connection presents the new certificate.
		up.CloseClientConnections()
		deadline := time.Now().Add(5 * time.Second)
		for get(c, br) != serial(next) {
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: the upstream never saw the new certificate", i+1)
			}
			up.CloseClientConnections()
		}
		for !m.last().Equal(next.Cert.NotAfter) {
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: expiry reported %s, want %s", i+1, m.last(), next.Cert.NotAfter)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// The certificate's source cannot change under a running gateway.
	fileCfg := strings.Replace(y, "identity:\n  dir: "+dir+"\n  hosts: [localhost, 127.0.0.1]\n", "cert: gateway.pem\nkey: gateway.key\n", 1)
	first.WriteFiles(t, dir, "gateway")
	if err := os.WriteFile(cfgPath, []byte(fileCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "gateway: the config names cert and key files, but the gateway's certificate comes from its identity; switching needs a restart"
	if err := gw.ReloadFrom(cfgPath); err == nil || err.Error() != want {
		t.Fatalf("reload to cert files: %v, want %s", err, want)
	}
	get(kept, keptBR)
	fc, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(fc, Options{Certificate: func() *tls.Certificate { return cur.Load() }}); err == nil || err.Error() != want {
		t.Fatalf("New with both: %v, want %s", err, want)
	}
	if _, err := New(cfg, Options{}); err == nil || err.Error() != "gateway: the config names no cert and key files and no certificate source was given; switching needs a restart" {
		t.Fatalf("New with neither: %v", err)
	}
}

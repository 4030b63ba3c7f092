package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		rand float64
		want []time.Duration
	}{
		{0.5, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 300 * time.Second, 300 * time.Second}},
		{0, []time.Duration{800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond}},
		// The upper jitter never passes the cap.
		{0.999, []time.Duration{1200 * time.Millisecond, 2399 * time.Millisecond, 4798 * time.Millisecond, 9597 * time.Millisecond, 19194 * time.Millisecond, 38387 * time.Millisecond, 76774 * time.Millisecond, 153549 * time.Millisecond, 300 * time.Second, 300 * time.Second}},
	} {
		a := &Agent{o: Options{MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff, Rand: func() float64 { return tc.rand }}}
		for i, want := range tc.want {
			if got := a.backoff(i + 1).Round(time.Millisecond); got != want {
				t.Errorf("rand %v, retry %d: %s, want %s", tc.rand, i+1, got, want)
			}
		}
	}
}

func TestRenewalPoint(t *testing.T) {
	nb := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &credentials{Credentials: &certgatetls.Credentials{Chain: []*x509.Certificate{{NotBefore: nb, NotAfter: nb.Add(100 * time.Hour)}}}}
	for r, want := range map[float64]time.Duration{0: 60 * time.Hour, 0.5: 65 * time.Hour, 1: 70 * time.Hour} {
		a := &Agent{o: Options{Rand: func() float64 { return r }}}
		if got := a.renewalPoint(c).Sub(nb).Round(time.Millisecond); got != want {
			t.Errorf("rand %v: renew after %s, want %s", r, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	na := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cur := &credentials{Credentials: &certgatetls.Credentials{Serial: "ab12", Chain: []*x509.Certificate{{NotAfter: na}}}}
	a := &Agent{}
	const again = ": enroll again with a new token (certgate enroll --token ...)"
	for _, tc := range []struct {
		in       error
		sentinel error
		want     string
	}{
		{&apiclient.Error{Status: 403, Code: "revoked"}, ErrRevoked, "agent: certificate revoked (serial ab12)" + again},
		{&apiclient.Error{Status: 403, Code: "expired"}, ErrExpired, "agent: certificate expired at 2030-01-02T03:04:05Z (serial ab12)" + again},
		{&apiclient.Error{Status: 403, Code: "unknown_certificate"}, ErrUnknown, "agent: certificate unknown to the server, which did not issue serial ab12" + again},
		{&apiclient.Error{Status: 503, Code: "unavailable", Message: "store down"}, nil, "agent: renewal: server said 503 unavailable: store down"},
		{&apiclient.Error{Status: 400, Code: "bad_csr", Message: "x"}, nil, "agent: renewal: server said 400 bad_csr: x"},
		{errors.New("dial tcp: refused"), nil, "agent: renewal: dial tcp: refused"},
	} {
		err := a.classify(tc.in, cur)
		var stopped *StoppedError
		if err.Error() != tc.want || (tc.sentinel != nil) != errors.As(err, &stopped) || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
			t.Errorf("classify(%v) = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		want   string
	}{
		{"127.0.0.1:8080", false, ""},
		{"[::1]:8080", false, ""},
		{"localhost:8080", false, ""},
		{"127.0.0.2:0", false, ""},
		{"0.0.0.0:8080", true, ""},
		{"0.0.0.0:8080", false, `agent: listen address "0.0.0.0:8080" is not loopback: anyone who can connect to the proxy acts as this client; use 127.0.0.1:PORT, or --allow-remote if that is really meant`},
		{":8080", false, `agent: listen address ":8080" is not loopback: anyone who can connect to the proxy acts as this client; use 127.0.0.1:PORT, or --allow-remote if that is really meant`},
		{"10.1.2.3:80", false, `agent: listen address "10.1.2.3:80" is not loopback: anyone who can connect to the proxy acts as this client; use 127.0.0.1:PORT, or --allow-remote if that is really meant`},
		{"127.0.0.1", false, `agent: listen address "127.0.0.1": address 127.0.0.1: missing port in address`},
	} {
		err := CheckListen(tc.addr, tc.remote)
		if got := errString(err); got != tc.want {
			t.Errorf("CheckListen(%q, %v) = %s\nwant %s", tc.addr, tc.remote, got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestServerURL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, certgatetls.ServerURLFile)
	if _, err := ServerURL(dir, ""); errString(err) != "agent: no server URL: enroll with certgate enroll (which writes "+path+") or pass --server https://HOST:PORT once" {
		t.Fatalf("no URL: %v", err)
	}
	if _, err := ServerURL(dir, "http://ca.example:8443"); errString(err) != `agent: server URL "http://ca.example:8443" must be https://HOST[:PORT]` {
		t.Fatalf("http URL: %v", err)
	}
	if u, err := ServerURL(dir, "https://ca.example:8443"); err != nil || u != "https://ca.example:8443" {
		t.Fatalf("flag: %q %v", u, err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("ServerURL wrote server.url before the agent was set up")
	}
	if err := RememberServerURL(dir, "https://ca.example:8443"); err != nil {
		t.Fatal(err)
	}
	if u, err := ServerURL(dir, ""); err != nil || u != "https://ca.example:8443" {
		t.Fatalf("remembered: %q %v", u, err)
	}
	os.WriteFile(path, []byte("ftp://x\n"), 0o644)
	if _, err := ServerURL(dir, ""); errString(err) != `agent: server URL "ftp://x" must be https://HOST[:PORT] (in `+path+`)` {
		t.Fatalf("bad file: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Options{Dir: dir, ServerURL: "https://127.0.0.1:1"}); errString(err) != "agent: "+filepath.Join(dir, "key.pem")+" does not exist: enroll first (certgate enroll --token ... --out "+dir+")" {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := New(Options{Dir: dir}); errString(err) != `agent: server URL "" must be https://HOST[:PORT]` {
		t.Fatalf("no server: %v", err)
	}
	e := newEnv(t, time.Hour)
	other := e.enroll("/svc/other", keytype.ECDSAP256)
	client := e.enroll("/svc/billing", keytype.ECDSAP256)
	key, _ := os.ReadFile(filepath.Join(other, "key.pem"))
	os.WriteFile(filepath.Join(client, "key.pem"), key, 0o600)
	// The files are read and checked by certgatetls, which owns their format.
	want := "agent: certgatetls: private key does not match the certificate: " + filepath.Join(client, "key.pem") + " does not hold the key of " + filepath.Join(client, "cert.pem")
	if _, err := New(Options{Dir: client, ServerURL: e.url}); errString(err) != want || !errors.Is(err, certgatetls.ErrKeyMismatch) {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := NewProxy(&Agent{}, "http://127.0.0.1:8443", nil); errString(err) != `agent: upstream "http://127.0.0.1:8443" must be https://HOST[:PORT][/PATH]` {
		t.Fatalf("plain upstream: %v", err)
	}
}

// TestStatus: without a status file the status comes from cert.pem; with
// one, from what the agent wrote; both print the same fields.
func TestStatus(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	leaf := readLeaf(t, dir)
	serial := leaf.SerialNumber.Text(16)
	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	twoThirds := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	if st.State != StateNotRunning || st.Serial != serial || !st.NextRenewal.Equal(twoThirds) || st.Identity != "spiffe://example.org/svc/billing" {
		t.Fatalf("from cert.pem: %+v", st)
	}
	var b bytes.Buffer
	now := e.clock.Now()
	st.WriteText(&b, now)
	want := "health:        valid, revocation not checked\n" +
		"identity:      spiffe://example.org/svc/billing\n" +
		"serial:        " + serial + "\n" +
		"not after:     " + leaf.NotAfter.UTC().Format(time.RFC3339) + " (in " + leaf.NotAfter.Sub(now).String() + ")\n" +
		"next renewal:  about " + twoThirds.UTC().Format(time.RFC3339) + " (in " + twoThirds.Sub(now).String() + ")\n" +
		"state:         not running\n" +
		"revocation:    not checked yet\n" +
		"last renewal:  never\n" +
		"last error:    none\n"
	if b.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", b.String(), want)
	}

	a, _ := e.newAgent(dir, midJitter)
	run(t, a)
	e.waitSleeping(t)
	st, err = ReadStatus(dir)
	if err != nil || st.State != StateWaiting || !st.NextRenewal.Equal(a.Status().NextRenewal) {
		t.Fatalf("from the agent: %+v %v", st, err)
	}
	// Asked at start: the responder named in the certificate says good.
	if st.Revocation != "good" || st.Health(e.clock.Now()) != "healthy" || st.RevocationError != "" {
		t.Fatalf("revocation status from the agent: %+v", st)
	}
	b.Reset()
	st.WriteText(&b, e.clock.Now())
	if !strings.HasPrefix(b.String(), "health:        healthy\n") || !strings.Contains(b.String(), "\nrevocation:    good, as of ") {
		t.Fatalf("text of a running agent:\n%s", b.String())
	}
	if got := (Status{NotAfter: now.Add(-time.Second)}).Health(now); got != "expired" {
		t.Fatalf("Health of an expired certificate = %q", got)
	}
	e.clock.AdvanceTo(st.NextRenewal)
	waitFor(t, "the renewal in agent-status.json", func() bool { st, err = ReadStatus(dir); return err == nil && st.Renewals == 1 })
	if err != nil || st.Renewals != 1 || st.Serial == serial || st.Serial != readLeaf(t, dir).SerialNumber.Text(16) || !st.LastRenewal.Equal(e.clock.Now()) {
		t.Fatalf("after a renewal: %+v %v", st, err)
	}
	b.Reset()
	st.WriteText(&b, e.clock.Now())
	if !strings.Contains(b.String(), "last renewal:  "+e.clock.Now().UTC().Format(time.RFC3339)+" (now)\n") {
		t.Fatalf("text after a renewal:\n%s", b.String())
	}
	fi, err := os.Stat(filepath.Join(dir, StatusFile))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("status file: %v %v", fi, err)
	}
}

// TestProxyRetry: a GET whose connection the upstream closes without an
// answer is sent once more and succeeds; a POST with a body is not
// repeated and gets 502; CONNECT is refused.
func TestProxyRetry(t *testing.T) {
	e := newEnv(t, time.Hour)
	dir := e.enroll("/svc/billing", keytype.ECDSAP256)
	a, _ := e.newAgent(dir, nil)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	iss, err := e.authz.IssueDirect(context.Background(), ca.Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/gateway/gw1"),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca.ServerProfile, store.ObtainedServer, "test")
	if err != nil {
		t.Fatal(err)
	}
	var hits, cut atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.URL.Path == "/flaky" && n%2 == 1 || r.Method == http.MethodPost {
			cut.Add(1)
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", 401)
			return
		}
		io.WriteString(w, "ok "+r.Method)
	}))
	up.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{iss.Cert.Raw, iss.Chain[0].Raw}, PrivateKey: key}},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"http/1.1"},
	}
	up.StartTLS()
	t.Cleanup(up.Close)
	base := startProxy(t, a, up.URL)

	resp, err := http.Get(base + "/flaky")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok GET" || cut.Load() != 1 || hits.Load() != 2 {
		t.Fatalf("GET: %d %q after %d cuts, %d hits", resp.StatusCode, body, cut.Load(), hits.Load())
	}
	resp, err = http.Post(base+"/order", "text/plain", strings.NewReader("one order"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(body), "certgate agent: gateway request failed: ") || hits.Load() != 3 {
		t.Fatalf("POST: %d %q, %d hits (want exactly one try)", resp.StatusCode, body, hits.Load())
	}
	req, _ := http.NewRequest(http.MethodConnect, base, nil)
	req.Host = "example.com:443"
	req.URL.Host = strings.TrimPrefix(base, "http://")
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
}

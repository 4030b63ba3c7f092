package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/legacykey"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/wire"
)

// The keys of these tests: random-looking, 256 and 192 bits.
const (
	keyBilling = "9c41e0b7d2a85f3619e4c07b2d5a83f1e6b09c4d7a2f5831c0e9b4d6a7f2e5c3"
	keyReports = "Zq8vR2mW5tY1kP9xL3nC7bF0hJ4dS6gA"
)

type legacySetup struct {
	env    *testenv.Env
	admin  *apiclient.Client
	gws    []*gatewaytest.Gateway
	seen   chan http.Header // what the upstream received, request by request
	client client           // a client with a certificate, allowed everywhere
}

// newLegacySetup runs a server, the keys billing and reports imported
// (sunset in a year), and n gateways following its feed, with routes
// "legacy" (/legacy/, takes keys in header until until, allows the
// billing key's identity and /svc/*) and "certs" (everything else, allows
// the same: a key is no good there).
func newLegacySetup(t *testing.T, n int, header string, until time.Time, clk clock.Clock, extra string, opts ...testenv.Option) *legacySetup {
	t.Helper()
	e := testenv.Start(t, opts...)
	s := &legacySetup{env: e, admin: e.Client(t, &e.AdminCert), seen: make(chan http.Header, 1000)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case s.seen <- r.Header.Clone():
		default:
		}
		fmt.Fprintf(w, "ok %s\n", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	ctx := context.Background()
	salt, err := s.admin.LegacyKeySalt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var in wire.LegacyKeyImport
	in.Sunset = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	for _, k := range [][2]string{{"billing", keyBilling}, {"reports", keyReports}} {
		h := legacykey.Hash(salt, k[1])
		in.Keys = append(in.Keys, wire.LegacyKeyHash{Name: k[0], Hash: hex.EncodeToString(h[:])})
	}
	if _, err := s.admin.ImportLegacyKeys(ctx, in); err != nil {
		t.Fatal(err)
	}
	allow := []string{"spiffe://example.org/legacy/billing", "spiffe://example.org/svc/*"}
	for i := range n {
		dir := t.TempDir()
		e.WriteClientFiles(t, dir, e.IssueDirect(t, identity.GatewayPrefix+fmt.Sprintf("gw%d", i), ca.GatewayProfile))
		s.gws = append(s.gws, gatewaytest.MustStart(t, gatewaytest.Options{Dir: dir, Clock: clk, Config: gatewaytest.Config{
			Bundle: "bundle.pem", Cert: "cert.pem", Key: "key.pem",
			ServerURLs: []string{e.URL}, MaxStaleness: "10m", MaxBackoff: "300ms",
			Routes: []gatewaytest.Route{
				{Name: "legacy", PathPrefix: "/legacy/", Upstream: up.URL, Allow: allow,
					Extra: fmt.Sprintf("legacy_keys: {header: %s, until: %q, link: \"https://wiki.example.org/enroll\"}", header, until.UTC().Format(time.RFC3339))},
				{Name: "certs", PathPrefix: "/", Upstream: up.URL, Allow: allow},
			},
			Extra: extra,
		}}))
	}
	cert := e.IssueDirect(t, "/svc/alice", ca.ClientProfile)
	s.client = client{cert: cert, id: "spiffe://example.org/svc/alice"}
	for _, g := range s.gws {
		s.waitKeys(t, g.Addr, header)
	}
	return s
}

// waitKeys waits until the gateway at addr has the keys from the feed.
func (s *legacySetup) waitKeys(t *testing.T, addr, header string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _, _ := s.keyGet(t, addr, "/legacy/x", header, keyBilling)
		if st == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s: the key is not accepted after 15 s (status %d)", addr, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keyGet is one GET without a certificate, the key in header.
func (s *legacySetup) keyGet(t *testing.T, addr, path, header, key string) (int, http.Header, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.env.Roots, ServerName: "127.0.0.1"}}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
	if key != "" {
		if header == "Authorization" {
			key = "Bearer " + key
		}
		req.Header.Set(header, key)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (s *legacySetup) lastSeen(t *testing.T) http.Header {
	t.Helper()
	var h http.Header
	for {
		select {
		case h = <-s.seen:
		default:
			if h == nil {
				t.Fatal("the upstream saw no request")
			}
			return h
		}
	}
}

func (s *legacySetup) drain() {
	for {
		select {
		case <-s.seen:
		default:
			return
		}
	}
}

// noCertificateBody is the refusal a client without a certificate gets,
// exactly as on a gateway without legacy keys (docs/gateway.md Refusals).
const noCertificateBody = `{"error":{"code":"no_certificate","message":"this gateway requires a client certificate: present the certificate and key certgate issued you (curl --cert cert.pem --key key.pem)"},"detail":"no client certificate"}`

// TestLegacyKeyCurl: with curl, a key works on the route that opts in
// (HTTP/1.1 and HTTP/2), with Deprecation, Sunset and Link, and reaches
// the upstream as the key's identity with X-Client-Auth and without the
// key; on any other route, or without a key, the answer is the
// no_certificate refusal unchanged; a wrong key is 401 unknown_key; a
// client with a certificate is never asked for a key and its key header
// is not forwarded either.
func TestLegacyKeyCurl(t *testing.T) {
	curl := testenv.RequirePeer(t, "curl")
	until := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	s := newLegacySetup(t, 1, "X-API-Key", until, nil, "")
	addr := s.gws[0].Addr
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	os.WriteFile(bundle, s.env.BundlePEM, 0o600)
	run := func(args ...string) (status int, headers, body string) {
		t.Helper()
		hf := filepath.Join(dir, "headers")
		args = append([]string{"-sS", "--cacert", bundle, "-D", hf, "-w", "\n%{http_code}"}, args...)
		out, err := exec.Command(curl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		i := bytes.LastIndexByte(out, '\n')
		fmt.Sscan(string(out[i+1:]), &status)
		h, _ := os.ReadFile(hf)
		return status, string(h), strings.TrimRight(string(out[:i]), "\n")
	}
	for _, proto := range []string{"--http1.1", "--http2"} {
		s.drain()
		st, h, body := run(proto, "-H", "X-API-Key: "+keyBilling, "https://127.0.0.1:"+port(addr)+"/legacy/invoices")
		if st != 200 || body != "ok /legacy/invoices" {
			t.Fatalf("%s with the key: %d %q", proto, st, body)
		}
		sunset := until.Format(http.TimeFormat)
		for _, want := range []string{"deprecation: @", "sunset: " + sunset, `link: <https://wiki.example.org/enroll>; rel="deprecation"; type="text/html", <https://wiki.example.org/enroll>; rel="sunset"; type="text/html"`} {
			if !strings.Contains(strings.ToLower(h), strings.ToLower(want)) {
				t.Errorf("%s: response headers lack %q:\n%s", proto, want, h)
			}
		}
		got := s.lastSeen(t)
		if got.Get("X-Client-Identity") != "spiffe://example.org/legacy/billing" || got.Get("X-Client-Auth") != "legacy-key" || got.Get("X-Api-Key") != "" || got.Get("Client-Cert") != "" {
			t.Errorf("%s: the upstream saw %v", proto, got)
		}
		for k, v := range got {
			if strings.Contains(strings.Join(v, ","), keyBilling) {
				t.Errorf("%s: the key reached the upstream in %s", proto, k)
			}
		}
		// Another route, or no key: the refusal of a client without a
		// certificate, unchanged.
		for _, args := range [][]string{
			{proto, "-H", "X-API-Key: " + keyBilling, "https://127.0.0.1:" + port(addr) + "/other"},
			{proto, "https://127.0.0.1:" + port(addr) + "/legacy/invoices"},
			{proto, "-H", "Authorization: Bearer " + keyBilling, "https://127.0.0.1:" + port(addr) + "/legacy/invoices"},
		} {
			if st, _, body := run(args...); st != 401 || body != noCertificateBody {
				t.Errorf("%v: %d %s", args, st, body)
			}
		}
		if st, _, body := run(proto, "-H", "X-API-Key: "+keyReports[:20]+"AAAAAAAAAAAA", "https://127.0.0.1:"+port(addr)+"/legacy/invoices"); st != 401 ||
			body != `{"error":{"code":"unknown_key","message":"this API key is not accepted (unknown, revoked or mistyped); clients move to certificates: ask your operator for an enrollment token (certgate legacy-key migrate) and call with the certificate"},"instructions":"https://wiki.example.org/enroll"}` {
			t.Errorf("wrong key: %d %s", st, body)
		}
		// The reports key is known but its identity is not allowed.
		if st, _, body := run(proto, "-H", "X-API-Key: "+keyReports, "https://127.0.0.1:"+port(addr)+"/legacy/invoices"); st != 403 ||
			body != `{"error":{"code":"forbidden","message":"this identity is not allowed to make this request"},"identity":"spiffe://example.org/legacy/reports","request":{"method":"GET","host":"127.0.0.1:`+port(addr)+`","path":"/legacy/invoices"}}` {
			t.Errorf("reports key: %d %s", st, body)
		}
	}
	// A certificate client: served as before, never asked for a key, and
	// a key it sends is not forwarded.
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeCertFiles(t, s.env, s.client.cert, cert, key)
	s.drain()
	st, h, body := run("--cert", cert, "--key", key, "-H", "X-API-Key: "+keyBilling, "-H", "X_API_Key: "+keyBilling, "-H", "X-Client-Auth: legacy-key", "https://127.0.0.1:"+port(addr)+"/legacy/invoices")
	if st != 200 || body != "ok /legacy/invoices" || strings.Contains(strings.ToLower(h), "deprecation") {
		t.Fatalf("certificate client: %d %q\n%s", st, body, h)
	}
	got := s.lastSeen(t)
	if got.Get("X-Client-Identity") != s.client.id || got.Get("X-Api-Key") != "" || got.Get("X_api_key") != "" || got.Get("X-Client-Auth") != "" {
		t.Errorf("certificate client: the upstream saw %v", got)
	}
	// The access log says how each request authenticated, and never the key.
	log := s.gws[0].Access.String()
	if strings.Contains(log, keyBilling) || strings.Contains(log, keyReports) {
		t.Error("a key is in the access log")
	}
	if !strings.Contains(log, `"identity":"spiffe://example.org/legacy/billing","serial":"legacy-key:billing","auth":"legacy-key"`) {
		t.Errorf("no key-authenticated line in the access log:\n%s", log)
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestLegacyKeyPython: Python requests with the key in Authorization:
// Bearer; the Sunset header parses as an HTTP date.
func TestLegacyKeyPython(t *testing.T) {
	py := pythonRequests(t)
	until := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	s := newLegacySetup(t, 1, "Authorization", until, nil, "")
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	os.WriteFile(bundle, s.env.BundlePEM, 0o600)
	script := `
import sys, requests, email.utils
url, bundle, key = sys.argv[1], sys.argv[2], sys.argv[3]
r = requests.get(url + "/legacy/pay", headers={"Authorization": "Bearer " + key}, verify=bundle)
print(r.status_code, r.text.strip(), r.headers["Deprecation"][:1], email.utils.parsedate_to_datetime(r.headers["Sunset"]).isoformat(), r.links["sunset"]["url"])
r = requests.get(url + "/other", headers={"Authorization": "Bearer " + key}, verify=bundle)
print(r.status_code, r.json()["error"]["code"])
`
	s.drain()
	out, err := exec.Command(py, "-c", script, "https://127.0.0.1:"+port(s.gws[0].Addr), bundle, keyBilling).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := fmt.Sprintf("200 ok /legacy/pay @ %s https://wiki.example.org/enroll\n401 no_certificate\n", until.Format("2006-01-02T15:04:05+00:00"))
	if string(out) != want {
		t.Errorf("python printed\n%s\nwant\n%s", out, want)
	}
	if got := s.lastSeen(t); got.Get("Authorization") != "" || got.Get("X-Client-Auth") != "legacy-key" {
		t.Errorf("the upstream saw %v", got)
	}
}

func pythonRequests(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p
		}
	}
	if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
		t.Fatal("no python3 with requests (install python3-requests; CERTGATE_REQUIRE_PEERS=1)")
	}
	t.Skip("no python3 with requests: skipping (install python3-requests)")
	return ""
}

func writeCertFiles(t *testing.T, e *testenv.Env, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	e.WriteClientFiles(t, dir, c)
	for from, to := range map[string]string{"cert.pem": certFile, "key.pem": keyFile} {
		b, err := os.ReadFile(filepath.Join(dir, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyKeyRevokedOnThreeGateways: a revoked key is refused by 3
// gateways within a second of the revoke call returning.
func TestLegacyKeyRevokedOnThreeGateways(t *testing.T) {
	s := newLegacySetup(t, 3, "X-API-Key", time.Now().Add(24*time.Hour), nil, "")
	if _, err := s.admin.RevokeLegacyKey(context.Background(), "billing", wire.LegacyKeyRevoke{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	for _, g := range s.gws {
		for {
			st, _, body := s.keyGet(t, g.Addr, "/legacy/x", "X-API-Key", keyBilling)
			if st == 401 && strings.Contains(string(body), `"unknown_key"`) {
				break
			}
			if time.Since(returned) > time.Second {
				t.Fatalf("gateway %s still answers %d to the revoked key 1s after the revoke call returned", g.Addr, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("3 gateways refuse the revoked key %v after the revoke call returned", time.Since(returned).Round(time.Millisecond))
	// The other key still works.
	if st, _, _ := s.keyGet(t, s.gws[0].Addr, "/legacy/x", "X-API-Key", keyReports); st != 403 {
		t.Errorf("reports key after billing's revocation: %d, want 403 (known, not allowed)", st)
	}
}

// TestLegacyKeySunset: past the route's until (on the gateway's clock, a
// fake one moved on), a key gets 401 saying what to do.
func TestLegacyKeySunset(t *testing.T) {
	clk := clock.NewFake(time.Now())
	until := clk.Now().Add(time.Hour).UTC().Truncate(time.Second)
	s := newLegacySetup(t, 1, "X-API-Key", until, clk, "")
	clk.Advance(2 * time.Hour)
	want := `{"error":{"code":"key_sunset","message":"static API keys stopped working here at ` + until.Format(time.RFC3339) +
		`: ask your operator for an enrollment token (certgate legacy-key migrate --name billing), enroll (certgate enroll --token TOKEN --out DIR), run the agent, and call with the certificate; instructions: https://wiki.example.org/enroll"},"instructions":"https://wiki.example.org/enroll"}`
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Until the next heartbeat the gateway's revocation data looks
		// old by the moved clock (503); then the sunset answers.
		st, _, body := s.keyGet(t, s.gws[0].Addr, "/legacy/x", "X-API-Key", keyBilling)
		if st == 401 {
			if string(body) != want {
				t.Fatalf("after the sunset:\n%s\nwant\n%s", body, want)
			}
			break
		}
		if st != 503 || time.Now().After(deadline) {
			t.Fatalf("after the sunset: %d %s", st, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLegacyKeyMigration: a client calling with its key moves to a
// certificate while it keeps sending requests, through legacy-key migrate
// (a token for its identity, the key revoked 2 s after the certificate's
// first use), certgate enroll and the agent's proxy: no request fails,
// the list and the console show it go from "key only" to "certificate
// only", the key is revoked after the grace, and the key is in no log.
func TestLegacyKeyMigration(t *testing.T) {
	bin := testenv.Certgate(t)
	s := newLegacySetup(t, 1, "X-API-Key", time.Now().Add(24*time.Hour), nil, "usage:\n  flush_interval: 300ms\n",
		testenv.WithServerOptions(func(o *server.Options) { o.LegacyAutoRevokeInterval = 200 * time.Millisecond }))
	ctx := context.Background()
	gw := s.gws[0]
	state := func() wire.LegacyKey {
		t.Helper()
		keys, err := s.admin.LegacyKeys(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.Name == "billing" {
				return k
			}
		}
		t.Fatal("no key billing")
		return wire.LegacyKey{}
	}
	waitState := func(want string, cond func(wire.LegacyKey) bool) wire.LegacyKey {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			k := state()
			if k.State == want && (cond == nil || cond(k)) {
				return k
			}
			if time.Now().After(deadline) {
				t.Fatalf("key billing is %+v after 30 s, want state %q", k, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The client: a request every 10 ms, with its key straight to the
	// gateway until the agent's proxy is up, then through the proxy (its
	// code still adds the key header; the gateway drops it).
	var proxy atomic.Value
	proxy.Store("")
	var sent, failed, viaKey, viaCert atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.env.Roots, ServerName: "127.0.0.1"}}}
		plain := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			c, url := direct, "https://"+gw.Addr+"/legacy/pay"
			if p := proxy.Load().(string); p != "" {
				c, url = plain, "http://"+p+"/legacy/pay"
			}
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("X-API-Key", keyBilling)
			resp, err := c.Do(req)
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				t.Errorf("request %d: %v", sent.Load(), err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				t.Errorf("request %d: %d", sent.Load(), resp.StatusCode)
			} else if c == plain {
				viaCert.Add(1)
			} else {
				viaKey.Add(1)
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	before := waitState(wire.LegacyStateKeyOnly, func(k wire.LegacyKey) bool { return k.Requests > 0 })
	t.Logf("before: %s, %d key requests from %v on %v", before.State, before.Requests, before.Sources, before.Routes)

	res, err := s.admin.MigrateLegacyKey(ctx, "billing", wire.LegacyKeyMigrate{AutoRevokeAfter: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Token.Identity != "spiffe://example.org/legacy/billing" {
		t.Fatalf("token for %s", res.Token.Identity)
	}
	dir := filepath.Join(t.TempDir(), "billing")
	testenv.MustCLI(t, bin, "enroll", "--token", res.Token.Token, "--out", dir)
	proxyAddr := testenv.FreeAddr(t)
	ag := testenv.StartProcess(t, nil, bin, "agent", "--dir", dir, "--server", s.env.URL, "--listen", proxyAddr, "--upstream", "https://"+gw.Addr, "--log-format", "json")
	agCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ag.WaitFor(agCtx, t, "proxy listening on")
	proxy.Store(proxyAddr)

	after := waitState(wire.LegacyStateCertOnly, func(k wire.LegacyKey) bool { return !k.RevokedAt.IsZero() })
	if after.RevokedBy != "system:legacy-key-migration" || after.CertRequests == 0 || after.RevokedAt.Sub(after.CertFirstSeen) < 2*time.Second {
		t.Errorf("after: %+v", after)
	}
	t.Logf("after: %s, revoked %v after the certificate's first use, %d certificate requests", after.State, after.RevokedAt.Sub(after.CertFirstSeen).Round(time.Millisecond), after.CertRequests)
	// A few more requests through the proxy after the revocation.
	for n := viaCert.Load(); viaCert.Load() < n+20; {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || viaKey.Load() == 0 || viaCert.Load() == 0 {
		t.Fatalf("%d requests: %d failed, %d with the key, %d with the certificate", sent.Load(), failed.Load(), viaKey.Load(), viaCert.Load())
	}
	t.Logf("%d requests, none failed: %d with the key, then %d with the certificate", sent.Load(), viaKey.Load(), viaCert.Load())
	if st, _, body := s.keyGet(t, gw.Addr, "/legacy/pay", "X-API-Key", keyBilling); st != 401 || !strings.Contains(string(body), "unknown_key") {
		t.Errorf("the revoked key: %d %s", st, body)
	}

	// The console shows the switch.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.env.Roots, Certificates: []tls.Certificate{s.env.AdminCert}}}}
	resp, err := hc.Get(s.env.URL + "/ui/legacy-keys?sort=traffic")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<tr class="legacy-key" data-state="certificate only"><td>billing</td>`) ||
		!strings.Contains(string(page), `<p id="summary">0 key only · 0 both · 1 certificate only · 1 unused</p>`) {
		t.Errorf("console: %d\n%s", resp.StatusCode, page)
	}
	// No key in the gateway's access log, the agent's output or the console.
	for what, text := range map[string]string{"access log": gw.Access.String(), "agent stdout": ag.Stdout.String(), "agent stderr": ag.Stderr.String(), "console": string(page)} {
		if strings.Contains(text, keyBilling) {
			t.Errorf("the key is in the %s", what)
		}
	}
}

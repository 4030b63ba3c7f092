package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/token"
)

// gatewaySetup is a real certgate server and CA, a gateway whose own
// certificate the CA issued, and clients enrolled with real tokens.
type gatewaySetup struct {
	dir       string // CA directory
	bundle    string
	cfgPath   string
	addr      string
	access    *syncBuffer
	upstream  *httptest.Server
	mu        sync.Mutex
	lastHdr   http.Header
	clientDir map[string]string // name -> enrolled directory
}

// syncBuffer is a log written while the test reads it.
type syncBuffer = testenv.SyncBuffer

// enrollCLI enrolls spiffe://example.org/svc/NAME the operator's way:
// `certgate token create` in the CA directory, then `certgate enroll` into
// a new directory, which it returns.
func enrollCLI(t *testing.T, caDir, name string) string {
	t.Helper()
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", caDir, "--identity", "spiffe://example.org/svc/"+name, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), name)
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	return out
}

func (g *gatewaySetup) header() http.Header {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastHdr
}

func newGatewaySetup(t *testing.T) *gatewaySetup {
	t.Helper()
	g := &gatewaySetup{dir: startServer(t), clientDir: map[string]string{}}
	g.bundle = filepath.Join(g.dir, "bundle.pem")
	srvCfg, err := config.LoadServer(g.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"billing", "other"} {
		g.clientDir[name] = enrollCLI(t, g.dir, name)
	}
	gwDir := t.TempDir()
	enrollGateway(t, g.dir, gwDir)

	g.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.lastHdr = r.Header.Clone()
		g.mu.Unlock()
		fmt.Fprintf(w, "hello %s via %s\n", r.Header.Get(gateway.HeaderIdentity), r.Proto)
	}))
	t.Cleanup(g.upstream.Close)
	g.cfgPath = filepath.Join(gwDir, "gateway.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
bundle: %s
cert: cert.pem
key: key.pem
server:
  url: %s
  revocation_refresh: 100ms
routes:
  - name: billing
    path_prefix: /v1
    upstream: %s
    allow: ["spiffe://example.org/svc/billing"]
`, g.bundle, srvCfg.Listen.URL, g.upstream.URL)
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: gwDir, File: g.cfgPath, Log: slog.New(slog.DiscardHandler)})
	g.addr, g.access = gw.Addr, gw.Access
	return g
}

// enrollGateway redeems a /gateway/ token with a CSR naming 127.0.0.1 and
// localhost, so the CA issues the gateway's serving certificate.
func enrollGateway(t *testing.T, caDir, out string) {
	t.Helper()
	mustCLI(t, "role", "grant", "--dir", caDir, "gateway", "spiffe://example.org/gateway/gw1")
	tokStr := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", caDir, "--identity", "spiffe://example.org/gateway/gw1", "--role", "gateway", "--ttl", "10m"))
	tok, err := token.Parse(tokStr)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{tok.Identity.URL()}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	bundlePEM, _ := os.ReadFile(filepath.Join(caDir, "bundle.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundlePEM)
	cl, err := apiclient.New(apiclient.Options{ServerURL: tok.ServerURL, Roots: roots, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Enroll(context.Background(), tokStr, string(pemutil.EncodeCSR(der)))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pemutil.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "cert.pem"), []byte(resp.Certificate+resp.Chain), 0o644)
	os.WriteFile(filepath.Join(out, "key.pem"), keyPEM, 0o600)
}

func (g *gatewaySetup) curl(t *testing.T, client string, extra ...string) (stdout string, exit int) {
	t.Helper()
	args := []string{"-sS", "--max-time", "10", "--cacert", g.bundle, "-w", "\n%{http_code} %{http_version}"}
	if client != "" {
		d := g.clientDir[client]
		args = append(args, "--cert", filepath.Join(d, "cert.pem"), "--key", filepath.Join(d, "key.pem"))
	}
	args = append(args, extra...)
	cmd := exec.Command("curl", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String() + errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// waitAccess waits for an access log line containing every substring.
func (g *gatewaySetup) waitAccess(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(g.access.String(), "\n") {
			ok := line != ""
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no access log line with %q in:\n%s", subs, g.access.String())
}

func TestGatewayEndToEndWithRealCA(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	g := newGatewaySetup(t)
	base := "https://127.0.0.1:" + g.addr[strings.LastIndexByte(g.addr, ':')+1:]

	out, code := g.curl(t, "billing", "--http1.1", "-H", "X-Client-Identity: spiffe://example.org/admin/root", base+"/v1/pay")
	if code != 0 || out != "hello spiffe://example.org/svc/billing via HTTP/1.1\n\n200 1.1" {
		t.Fatalf("curl billing: exit %d %q", code, out)
	}
	h := g.header()
	if v := h.Values(gateway.HeaderIdentity); len(v) != 1 || v[0] != "spiffe://example.org/svc/billing" {
		t.Fatalf("upstream saw identity %q", v)
	}
	if h.Get(gateway.HeaderClientCert) == "" || h.Get(gateway.HeaderXFCC) == "" || h.Get(gateway.HeaderSerial) == "" {
		t.Fatalf("identity headers missing: %v", h)
	}

	out, code = g.curl(t, "billing", "--http2", base+"/v1/pay")
	if code != 0 || out != "hello spiffe://example.org/svc/billing via HTTP/1.1\n\n200 2" {
		t.Fatalf("curl --http2: exit %d %q", code, out)
	}

	out, code = g.curl(t, "other", "--http1.1", base+"/v1/pay")
	if code != 0 || !strings.HasSuffix(out, "\n403 1.1") || !strings.Contains(out, `"identity":"spiffe://example.org/svc/other"`) {
		t.Fatalf("curl other: exit %d %q", code, out)
	}

	// Without a certificate: the handshake completes and the answer is a
	// 401 naming the reason.
	if out, code := g.curl(t, "", base+"/v1/pay"); code != 0 || !strings.Contains(out, `"code":"no_certificate"`) || !strings.HasSuffix(out, "\n401 2") {
		t.Fatalf("curl without a certificate: exit %d %q", code, out)
	}
	g.waitAccess(t, `"kind":"handshake"`, `"reason":"no_certificate"`)

	t.Run("python requests", func(t *testing.T) {
		python := pythonWithRequests(t)
		d := g.clientDir["billing"]
		script := fmt.Sprintf(`import requests
r = requests.get(%q, cert=(%q, %q), verify=%q, timeout=10)
print(r.status_code, r.text.strip())`, base+"/v1/py", filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem"), g.bundle)
		b, err := exec.Command(python, "-c", script).CombinedOutput()
		if err != nil || string(b) != "200 hello spiffe://example.org/svc/billing via HTTP/1.1\n" {
			t.Fatalf("python: %v %q", err, b)
		}
	})

	t.Run("policy test", func(t *testing.T) {
		var buf bytes.Buffer
		err := runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: filepath.Join(g.clientDir["billing"], "cert.pem"), method: "post", path: "/v1/pay"}, time.Now())
		if err != nil || !strings.Contains(buf.String(), "route:        billing (host any, path prefix /v1, methods any)\ndecision:     allow (matched spiffe://example.org/svc/billing)\n") {
			t.Fatalf("policy test: %v\n%s", err, buf.String())
		}
	})

	// Revoked at the server: the change feed brings it to the gateway,
	// which refuses the next handshake.
	leafPEM, _ := os.ReadFile(filepath.Join(g.clientDir["billing"], "cert.pem"))
	blk, _ := pem.Decode(leafPEM)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	serial := leaf.SerialNumber.Text(16)
	mustCLI(t, "cert", "revoke", "--dir", g.dir, "--serial", serial, "--reason", "keyCompromise")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := g.curl(t, "billing", base+"/v1/pay")
		if strings.Contains(out, `"code":"revoked"`) && strings.HasSuffix(out, "\n403 2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked certificate still accepted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.waitAccess(t, `"kind":"handshake"`, `"reason":"revoked"`, `"serial":"`+serial+`"`)
	var entries int
	for _, line := range strings.Split(strings.TrimSpace(g.access.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		entries++
	}
	if entries < 6 {
		t.Fatalf("%d access log entries", entries)
	}
}

func TestPolicyTestCmd(t *testing.T) {
	g := newGatewaySetup(t)
	other := filepath.Join(g.clientDir["other"], "cert.pem")
	var buf bytes.Buffer
	err := runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: other, method: "GET", path: "/v1/pay", host: "api.example.org"}, time.Now())
	if err != errDenied || !strings.Contains(buf.String(), "request:      GET api.example.org /v1/pay\nroute:        billing (host any, path prefix /v1, methods any)\ndecision:     deny (identity_not_allowed: spiffe://example.org/svc/other is not in the route's allow list)\n") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	buf.Reset()
	err = runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: other, method: "GET", path: "/admin"}, time.Now())
	if err != errDenied || !strings.Contains(buf.String(), "route:        none\ndecision:     deny (no_route: no route matches this request; the gateway denies by default)\n") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	buf.Reset()
	err = runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: other, method: "GET", path: "/v1"}, time.Now().Add(48*time.Hour))
	if err != errDenied || !strings.Contains(buf.String(), "handshake:    refused (expired): certificate expired at ") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	// The path is canonicalized as the gateway does it, and a target the
	// gateway refuses is said so.
	buf.Reset()
	err = runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: other, method: "get", path: "//v1/%70ay?x=1"}, time.Now())
	if err != errDenied || !strings.Contains(buf.String(), "request:      GET * /v1/pay\nroute:        billing") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	buf.Reset()
	err = runPolicyTest(&buf, policyTestOptions{config: g.cfgPath, cert: other, method: "GET", path: "/x/..%2fv1"}, time.Now())
	if err != errDenied || !strings.Contains(buf.String(), "request:      GET * /x/..%2fv1\nroute:        not consulted\ndecision:     deny (path_encoded_slash: request path has an encoded slash (%2F); the gateway answers 400 before any route is consulted)\n") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	// Through the CLI: exit status 1 on deny.
	stdout, stderr, code := cli(t, "policy", "test", "--config", g.cfgPath, "--cert", other, "--path", "/v1/x")
	if code != 1 || !strings.Contains(stdout, "decision:     deny") || stderr != "certgate: policy: the gateway would refuse this request\n" {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// pythonWithRequests returns a Python that has requests: Debian's (which
// .ci/run installs python3-requests into) first, then python3 on PATH. It
// skips the test when there is none, or fails under CERTGATE_REQUIRE_PEERS=1
// (CI), where a missing peer is a broken install step, not a reason to skip.
func pythonWithRequests(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p
		}
	}
	if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
		t.Fatal("no python3 with requests (Debian package python3-requests), and CERTGATE_REQUIRE_PEERS=1")
	}
	t.Skip("python3 with requests not installed (Debian package python3-requests)")
	return ""
}

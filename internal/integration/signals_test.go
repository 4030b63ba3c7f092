package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/testenv"
)

// TestSIGHUPKeepsServing runs every long-running command as a real
// process (server, gateway, agent with its proxy, quickstart), sends each
// a SIGHUP, and checks that it keeps serving and did what a reload
// promises: the server applies log.level, profiles and host names (a new
// serving certificate) and names server.listen as needing a restart; the
// gateway applies its routes and names metrics.listen and access_log.path
// as needing a restart; the agent re-reads its directory. Then SIGTERM
// stops each, and each logs a shutdown line saying what it drained.
func TestSIGHUPKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the certgate binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bin := testenv.Certgate(t)
	root := t.TempDir()
	dir := filepath.Join(root, "ca")
	addr := testenv.FreeAddr(t)
	testenv.MustCLI(t, bin, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", addr)
	_, roots, _, err := cadir.AdminCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartProcess(t, nil, bin, "server", "--dir", dir)
	srv.WaitFor(ctx, t, "certgate server listening on")
	first := servingLeaf(t, addr, roots)

	// The server: a SIGHUP applies what it can and names the rest.
	cfgPath := filepath.Join(dir, "certgate.yaml")
	edit(t, cfgPath,
		"  level: info", "  level: debug",
		"  client_lifetime: 24h0m0s", "  client_lifetime: 2h0m0s",
		"  hostnames:\n", "  hostnames:\n    - \"ca.example.test\"\n",
		"  listen: "+addr, "  listen: 127.0.0.1:1")
	srv.Signal(t, syscall.SIGHUP)
	log := srv.WaitFor(ctx, t, "SIGHUP: configuration reloaded")
	for _, want := range []string{
		`"applied":["profiles.client_lifetime","server.hostnames","log.level"]`,
		`"needs_restart":["server.listen"]`,
		`"msg":"SIGHUP: server.listen changed; it applies after a restart, the server keeps the running value"`,
		`"client_lifetime":"2h0m0s"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %s:\n%s", want, log)
		}
	}
	second := servingLeaf(t, addr, roots)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || !slices.Contains(second.DNSNames, "ca.example.test") {
		t.Fatalf("after SIGHUP the server serves serial %x with names %q; want a new certificate naming ca.example.test", second.SerialNumber, second.DNSNames)
	}
	// A file that does not load changes nothing, and says why.
	good, _ := os.ReadFile(cfgPath)
	edit(t, cfgPath, "  level: debug", "  levle: debug")
	srv.Signal(t, syscall.SIGHUP)
	srv.WaitFor(ctx, t, `"msg":"SIGHUP: reload rejected; the running configuration stays"`)
	if log := srv.Stderr.String(); !strings.Contains(log, `log.levle: unknown field; did you mean level?`) {
		t.Errorf("the rejected reload does not name the field:\n%s", log)
	}
	if err := os.WriteFile(cfgPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if again := servingLeaf(t, addr, roots); again.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("a rejected reload changed the serving certificate")
	}
	clientDir := filepath.Join(root, "billing")
	tok := strings.TrimSpace(testenv.MustCLI(t, bin, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/billing"))
	testenv.MustCLI(t, bin, "enroll", "--token", tok, "--out", clientDir)
	leaf := testenv.ReadLeaf(t, clientDir)
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 2*time.Hour+5*time.Minute || life < 2*time.Hour-5*time.Minute {
		t.Fatalf("a client certificate issued after the reload lives %s, want the reloaded 2h", life)
	}

	// The gateway.
	gwDir := filepath.Join(root, "gw")
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		t.Fatal(err)
	}
	gwAddr := testenv.FreeAddr(t)
	gwCfg := filepath.Join(gwDir, "gateway.yaml")
	upstream := testenv.Upstream(t, "X-Client-Identity")
	gwYAML := fmt.Sprintf(`listen: %s
trust_domain: example.org
bundle: %s
identity:
  dir: %s
  hosts: ["127.0.0.1"]
server:
  url: https://%s
access_log:
  path: %s
routes:
  - name: api
    path_prefix: /
    upstream: %s
    allow: [spiffe://example.org/svc/billing]
`, gwAddr, filepath.Join(dir, "bundle.pem"), gwDir, addr, filepath.Join(gwDir, "access.log"), upstream)
	if err := os.WriteFile(gwCfg, []byte(gwYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.MustCLI(t, bin, "role", "grant", "--dir", dir, "gateway", "spiffe://example.org/gateway/edge")
	gwTok := strings.TrimSpace(testenv.MustCLI(t, bin, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/gateway/edge", "--role", "gateway"))
	gw := testenv.StartProcess(t, nil, bin, "gateway", "--config", gwCfg, "--token", gwTok)
	gw.WaitFor(ctx, t, "certgate gateway listening on")
	client := testenv.MTLSClient(t, clientDir, roots)
	mustGet(t, client, "https://"+gwAddr+"/v1/x", "hello spiffe://example.org/svc/billing\n")

	metricsAddr := testenv.FreeAddr(t)
	edit(t, gwCfg,
		"access_log:\n  path: "+filepath.Join(gwDir, "access.log"), "metrics:\n  listen: "+metricsAddr+"\naccess_log:\n  path: "+filepath.Join(gwDir, "access2.log"),
		"allow: [spiffe://example.org/svc/billing]", "allow: [spiffe://example.org/svc/billing, spiffe://example.org/svc/other]")
	gw.Signal(t, syscall.SIGHUP)
	log = gw.WaitFor(ctx, t, `"msg":"configuration reloaded"`)
	for _, want := range []string{
		`"msg":"reload requested by signal"`,
		`"applied":["routes"]`,
		`"needs_restart":["access_log.path","metrics.listen"]`,
		`"msg":"reload: metrics.listen changed; it needs a restart (the metrics listener is bound at start), the running value stays"`,
		`"msg":"reload: access_log.path changed; it needs a restart (the access log file is opened at start), the running value stays"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("gateway log lacks %s:\n%s", want, log)
		}
	}
	mustGet(t, client, "https://"+gwAddr+"/v1/y", "hello spiffe://example.org/svc/billing\n")
	if c, err := net.DialTimeout("tcp", metricsAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("metrics.listen %s is served after a reload that said it needs a restart", metricsAddr)
	}

	// The agent and its proxy.
	proxyAddr := testenv.FreeAddr(t)
	ag := testenv.StartProcess(t, nil, bin, "agent", "--dir", clientDir, "--server", "https://"+addr,
		"--listen", proxyAddr, "--upstream", "https://"+gwAddr, "--log-format", "json")
	ag.WaitFor(ctx, t, "proxy listening on")
	plain := &http.Client{Timeout: 10 * time.Second}
	mustGet(t, plain, "http://"+proxyAddr+"/v1/z", "hello spiffe://example.org/svc/billing\n")
	ag.Signal(t, syscall.SIGHUP)
	ag.WaitFor(ctx, t, `"msg":"SIGHUP: re-read the directory; same certificate"`)
	mustGet(t, plain, "http://"+proxyAddr+"/v1/z", "hello spiffe://example.org/svc/billing\n")

	// The quickstart, all of it in one process.
	qsDir := filepath.Join(root, "qs")
	qs := testenv.StartProcess(t, nil, bin, "quickstart", "--dir", qsDir, "--listen", "127.0.0.1:0", "--server-listen", "127.0.0.1:0", "--json")
	qs.WaitFor(ctx, t, `"ready_ms":`)
	line, _, _ := strings.Cut(qs.Stdout.String(), "\n")
	var info struct {
		GatewayURL string `json:"gateway_url"`
		Bundle     string `json:"bundle"`
		Log        string `json:"log"`
		Clients    map[string]struct {
			Dir string `json:"dir"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("quickstart --json: %v\n%s", err, line)
	}
	qsRoots := x509.NewCertPool()
	if pem, err := os.ReadFile(info.Bundle); err != nil || !qsRoots.AppendCertsFromPEM(pem) {
		t.Fatalf("quickstart bundle %s: %v", info.Bundle, err)
	}
	qsClient := testenv.MTLSClient(t, info.Clients["allowed"].Dir, qsRoots)
	qs.Signal(t, syscall.SIGHUP)
	waitFile(ctx, t, info.Log, `"msg":"configuration reloaded"`)
	waitFile(ctx, t, info.Log, `"msg":"SIGHUP: configuration reloaded"`)
	resp, err := qsClient.Get(info.GatewayURL + "/")
	if err != nil {
		t.Fatalf("quickstart after SIGHUP: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("quickstart after SIGHUP: %s", resp.Status)
	}

	for _, p := range []*testenv.Process{srv, gw, ag, qs} {
		if !p.Running() {
			t.Fatalf("%s exited after SIGHUP:\n%s", p.Name, p.Stderr.String())
		}
	}

	// SIGTERM: each says what it drained.
	client.CloseIdleConnections()
	qs.Stop(t)
	ag.Stop(t)
	gw.Stop(t)
	srv.Stop(t)
	for _, c := range []struct {
		p    *testenv.Process
		want []string
	}{
		{srv, []string{`"msg":"server shutting down: no new connections; draining"`, `"msg":"server stopped","drained_active":`}},
		{gw, []string{`"msg":"gateway shutting down: no new connections","open_connections":`, `"msg":"gateway stopped","closed_connections":`}},
		{ag, []string{`"msg":"proxy stopped","drained_requests":`, `"msg":"agent stopped"`}},
		{qs, []string{"quickstart stopped"}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.p.Stderr.String(), w) {
				t.Errorf("%s: no %s in its log:\n%s", c.p.Name, w, c.p.Stderr.String())
			}
		}
	}
	waitFile(ctx, t, info.Log, `"msg":"server stopped"`)
	waitFile(ctx, t, info.Log, `"msg":"gateway stopped"`)
}

// edit replaces each old with its new in the file at path; every old must
// be there.
func edit(t *testing.T, path string, oldNew ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s has no %q:\n%s", path, oldNew[i], s)
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func servingLeaf(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("handshake with the server: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func mustGet(t *testing.T, c *http.Client, url, want string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("GET %s: %s %q, want 200 %q", url, resp.Status, body, want)
	}
}

// waitFile waits until the file at path contains want.
func waitFile(ctx context.Context, t *testing.T, path, want string) {
	t.Helper()
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never had %q:\n%s", path, want, data)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

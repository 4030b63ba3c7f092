package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/token"
)

// agentOutput is a bytes.Buffer safe for a command running in a goroutine.
type agentOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *agentOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *agentOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs `certgate agent args...` in-process until stop is called.
func startAgent(t *testing.T, args ...string) (out, errs *agentOutput, stop func() int) {
	t.Helper()
	out, errs = &agentOutput{}, &agentOutput{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"agent"}, args...), strings.NewReader(""), out, errs) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Error("certgate agent did not stop")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return out, errs, stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestAgentCLI: enroll, `agent status` from the certificate alone, then a
// running agent with its proxy: it remembers the server URL, reports
// itself in agent-status.json, proxies (here to a gateway that is not
// there: 502 with the reason), and stops cleanly; a second start needs no
// --server.
func TestAgentCLI(t *testing.T) {
	dir := startServer(t)
	id := "spiffe://example.org/svc/billing"
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", id, "--ttl", "10m"))
	parsed, err := token.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "client")
	mustCLI(t, "enroll", "--token", tok, "--out", out)

	text := mustCLI(t, "agent", "status", "--dir", out)
	for _, want := range []string{"identity:      " + id + "\n", "state:         not running\n", "next renewal:  about ", "last renewal:  never\n", "last error:    none\n"} {
		if !strings.Contains(text, want) {
			t.Fatalf("status lacks %q:\n%s", want, text)
		}
	}

	stdout, stderr, stop := startAgent(t, "--dir", out, "--server", parsed.ServerURL, "--listen", "127.0.0.1:0", "--upstream", "https://127.0.0.1:1")
	var proxyURL string
	eventually(t, "the proxy", func() bool {
		m := regexp.MustCompile(`proxy listening on (http://127\.0\.0\.1:\d+) -> https://127\.0\.0\.1:1 \(mTLS as ` + regexp.QuoteMeta(id) + `\)`).FindStringSubmatch(stdout.String())
		if m != nil {
			proxyURL = m[1]
		}
		return m != nil
	})
	eventually(t, "agent-status.json", func() bool {
		st, err := agent.ReadStatus(out)
		return err == nil && st.State == agent.StateWaiting
	})
	var st agent.Status
	if err := json.Unmarshal([]byte(mustCLI(t, "agent", "status", "--dir", out, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	life := st.NotAfter.Sub(st.NotBefore)
	if st.Identity != id || st.NextRenewal.Before(st.NotBefore.Add(life*6/10)) || st.NextRenewal.After(st.NotBefore.Add(life*7/10)) {
		t.Fatalf("status --json: %+v", st)
	}
	resp, err := http.Get(proxyURL + "/v1/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(body), "certgate agent: gateway request failed: ") {
		t.Fatalf("proxy to a missing gateway: %d %q", resp.StatusCode, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("agent exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr.String(), `msg="agent started" identity=`+id) {
		t.Fatalf("log lacks the start line:\n%s", stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "server.url")); string(b) != parsed.ServerURL+"\n" {
		t.Fatalf("server.url holds %q", b)
	}
	fi, err := os.Stat(filepath.Join(out, "combined.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("combined.pem: %v %v", fi, err)
	}

	stdout, stderr, stop = startAgent(t, "--dir", out)
	eventually(t, "the second start", func() bool { return strings.Contains(stdout.String(), "renewing through "+parsed.ServerURL+"\n") })
	if code := stop(); code != 0 {
		t.Fatalf("second start: exit %d\n%s", code, stderr)
	}
}

func TestAgentRefuses(t *testing.T) {
	empty := t.TempDir()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no dir":          {[]string{"agent"}, "certgate: --dir: required (the directory certgate enroll wrote)\n"},
		"listen alone":    {[]string{"agent", "--dir", empty, "--listen", "127.0.0.1:0"}, "certgate: --listen and --upstream go together: the proxy needs both\n"},
		"upstream alone":  {[]string{"agent", "--dir", empty, "--upstream", "https://gw:8443"}, "certgate: --listen and --upstream go together: the proxy needs both\n"},
		"remote listen":   {[]string{"agent", "--dir", empty, "--listen", "0.0.0.0:8080", "--upstream", "https://gw:8443"}, `certgate: agent: listen address "0.0.0.0:8080" is not loopback: anyone who can connect to the proxy acts as this client; use 127.0.0.1:PORT, or --allow-remote if that is really meant` + "\n"},
		"no server":       {[]string{"agent", "--dir", empty}, "certgate: agent: no server URL: enroll with certgate enroll (which writes " + filepath.Join(empty, "server.url") + ") or pass --server https://HOST:PORT once\n"},
		"plain server":    {[]string{"agent", "--dir", empty, "--server", "http://ca:8443"}, `certgate: agent: server URL "http://ca:8443" must be https://HOST[:PORT]` + "\n"},
		"not enrolled":    {[]string{"agent", "--dir", empty, "--server", "https://ca:8443"}, "certgate: agent: " + filepath.Join(empty, "key.pem") + " does not exist: enroll first (certgate enroll --token ... --out " + empty + ")\n"},
		"bad log format":  {[]string{"agent", "--dir", empty, "--log-format", "xml"}, "certgate: --log-format: \"xml\" is not text or json\n"},
		"status no dir":   {[]string{"agent", "status"}, "certgate: --dir: required (the agent's directory)\n"},
		"status no certs": {[]string{"agent", "status", "--dir", empty}, "certgate: agent: open " + filepath.Join(empty, "cert.pem") + ": no such file or directory\n"},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tc.args...)
			if code != 1 || stderr != tc.want || stdout != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant   %q", code, stdout, stderr, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("refused commands left %d files in the directory", len(entries))
	}
}

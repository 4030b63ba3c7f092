package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/testenv"
)

// TestReadmeExamples keeps README.md honest: its gateway.yaml loads with
// the strict decoder, and every certgate subcommand it shows exists.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no yaml example")
	}
	for _, b := range blocks {
		g, err := config.ParseGateway("README gateway.yaml", []byte(b[1]))
		if err != nil {
			t.Fatalf("README's gateway.yaml does not load: %v", err)
		}
		if len(g.Routes) == 0 || g.Identity.Dir == "" {
			t.Fatalf("README's gateway.yaml lost its route or identity: %+v", g)
		}
	}
	root := newRootCmd(strings.NewReader(""), nil, nil)
	var shell strings.Builder
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		shell.WriteString(b[1])
	}
	for _, m := range regexp.MustCompile(`certgate ([a-z]+(?: [a-z]+)?)`).FindAllStringSubmatch(shell.String(), -1) {
		words := strings.Fields(m[1])
		cmd, rest, err := root.Find(words)
		if err != nil || cmd == root || (len(rest) > 0 && cmd.HasSubCommands()) {
			t.Errorf("README shows `certgate %s`, which is not a command", m[1])
		}
	}
}

// TestReadmeWalkthrough runs README.md's walk-through ("## Using it" up to
// "### Reference") as written, block after block in one bash, against
// real processes: the certgate binary built from this tree, curl, and an
// API on the upstream address that answers with the identity the gateway
// forwarded. Only what cannot run here as written is mapped: /etc/certgate
// and /var/lib/certgate-gateway to a temporary directory, the ports to
// free ones (0.0.0.0 to 127.0.0.1), and init is given the server's port
// (8444, its default). A command started with & is waited for until it
// says it listens, as a person would before typing the next line.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands as processes; skipped with -short")
	}
	curl := testenv.RequirePeer(t, "curl")
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := testenv.Certgate(t)
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start, end := strings.Index(readme, "## Using it\n"), strings.Index(readme, "### Reference\n")
	if start < 0 || end < start {
		t.Fatal("README has no walk-through between \"## Using it\" and \"### Reference\"")
	}
	walk := readme[start:end]

	root := t.TempDir()
	binDir, work := filepath.Join(root, "bin"), filepath.Join(root, "work")
	for _, d := range []string{binDir, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(binDir, "certgate")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(curl, filepath.Join(binDir, "curl")); err != nil {
		t.Fatal(err)
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s at %s\n", r.Header.Get("X-Client-Identity"), r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go api.Serve(up)
	t.Cleanup(func() { api.Close() })
	port := func() string { _, p, _ := net.SplitHostPort(testenv.FreeAddr(t)); return p }
	gwPort, srvPort := port(), port()
	mapped := strings.NewReplacer(
		"/etc/certgate", filepath.Join(root, "etc/certgate"),
		"/var/lib/certgate-gateway", filepath.Join(root, "var/lib/certgate-gateway"),
		"0.0.0.0:8443", "127.0.0.1:"+gwPort,
		":8443", ":"+gwPort,
		":8444", ":"+srvPort,
		"127.0.0.1:9443", testenv.FreeAddr(t),
		"127.0.0.1:9000", up.Addr().String(),
		"certgate init --dir /etc/certgate --trust-domain example.org",
		"certgate init --dir "+filepath.Join(root, "etc/certgate")+" --trust-domain example.org --listen 127.0.0.1:"+srvPort,
	)

	yamlBlocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(walk, -1)
	if len(yamlBlocks) != 1 {
		t.Fatalf("the walk-through has %d gateway.yaml blocks, want 1", len(yamlBlocks))
	}
	if err := os.WriteFile(filepath.Join(work, "gateway.yaml"), []byte(mapped.Replace(yamlBlocks[0][1])), 0o644); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString(`set -euo pipefail
started() { # LOG PATTERN: wait until the background command says it is up
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "never started: $2"; cat "$1"; return 1
}
# wait: a server writes its last audit checkpoint as it stops.
trap 'kill $(cat pids 2>/dev/null) 2>/dev/null || true; wait' EXIT
`)
	readyLine := map[string]string{"server": "certgate server listening on", "gateway": "certgate gateway listening on", "agent": "proxy listening on"}
	background := regexp.MustCompile(`^(.*\S)\s+&\s*(#.*)?$`)
	n := 0
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(walk, -1) {
		text := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			line = mapped.Replace(line)
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			fmt.Fprintf(&script, "echo %s\n", shellQuote("$ "+line))
			if m := background.FindStringSubmatch(line); m != nil {
				words := strings.Fields(m[1])
				ready, ok := readyLine[words[1]]
				if words[0] != "certgate" || !ok {
					t.Fatalf("README starts %q in the background; the test knows how to wait only for certgate server, gateway and agent", m[1])
				}
				n++
				fmt.Fprintf(&script, "%s >bg%d.log 2>&1 &\necho $! >>pids\nstarted bg%d.log %s\n", m[1], n, n, shellQuote(ready))
				continue
			}
			script.WriteString(line + "\n")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "CERTGATE_DIR=", "CERTGATE_SERVER=", "CERTGATE_PASSPHRASE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README walk-through failed: %v\nscript:\n%s\noutput:\n%s", err, script.String(), out)
	}
	for _, want := range []string{
		"\nOK: leaf \"CN=billing\" verifies for client auth as spiffe://example.org/svc/billing",
		"\nrevocation: OCSP at https://127.0.0.1:" + srvPort + "/ocsp (the certificate's OCSP URL): good, as of ",
		"\ndecision:     allow (matched spiffe://example.org/svc/billing)\n",
		"\nhello spiffe://example.org/svc/billing at /v1/invoices\n$ certgate agent",        // curl through the gateway
		"\nhello spiffe://example.org/svc/billing at /v1/invoices\n$ certgate agent status", // curl through the agent
		"\nhealth:        healthy\n",
		`"code":"revoked"`,
		"\nrevoked, as OCSP says\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walk-through's output lacks %q\noutput:\n%s", want, out)
		}
	}
}

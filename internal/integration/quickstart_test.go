package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
)

// quickstartCommands are the commands quickstart prints, numbered in its
// text and under "commands" in its --json object.
type quickstartCommands struct {
	Allowed       string `json:"allowed"`
	Denied        string `json:"denied"`
	NoCertificate string `json:"no_certificate"`
	Revoke        string `json:"revoke"`
}

// quickstartReadyBound is a loose sanity bound on time-to-ready in tests;
// the figure itself is measured in docs/benchmarks.md ("Quickstart").
const quickstartReadyBound = 20 * time.Second

// quickstartProcess is a running "certgate quickstart" child process.
type quickstartProcess struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	stderr *testenv.SyncBuffer
	done   chan error
	start  time.Time
}

func startQuickstart(t *testing.T, bin string, args ...string) *quickstartProcess {
	t.Helper()
	p := &quickstartProcess{lines: make(chan string, 256), stderr: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"quickstart"}, args...)...)
	p.cmd.Env = quickstartEnv()
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
	})
	return p
}

// quickstartEnv is the test's environment without the variables that
// would change what quickstart does: it must work on a bare machine.
func quickstartEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// readUntil collects stdout lines until one satisfies last, and returns
// them with the time since the process started.
func (p *quickstartProcess) readUntil(t *testing.T, last func(string) bool) ([]string, time.Duration) {
	t.Helper()
	var got []string
	timeout := time.After(quickstartReadyBound)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("quickstart ended before it was ready: %v\nstdout:\n%s\nstderr:\n%s", <-p.done, strings.Join(got, "\n"), p.stderr.String())
			}
			got = append(got, line)
			if last(line) {
				return got, time.Since(p.start)
			}
		case <-timeout:
			t.Fatalf("quickstart not ready within %s\nstdout:\n%s\nstderr:\n%s", quickstartReadyBound, strings.Join(got, "\n"), p.stderr.String())
		}
	}
}

// stop sends sig and requires a clean exit 0.
func (p *quickstartProcess) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("quickstart after %v: %v\nstderr:\n%s", sig, err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("quickstart did not stop within 15 s of %v\nstderr:\n%s", sig, p.stderr.String())
	}
	if !strings.HasSuffix(p.stderr.String(), "quickstart stopped\n") {
		t.Fatalf("stderr does not end with \"quickstart stopped\":\n%s", p.stderr.String())
	}
}

// printedCommands parses the "# N. ..." blocks of the text output: the
// line after each heading is the command to paste.
func printedCommands(t *testing.T, lines []string) map[int]string {
	t.Helper()
	head := regexp.MustCompile(`^# ([1-9])\. `)
	cmds := map[int]string{}
	for i, l := range lines {
		if m := head.FindStringSubmatch(l); m != nil && i+1 < len(lines) {
			cmds[int(m[1][0]-'0')] = lines[i+1]
		}
	}
	if len(cmds) != 5 {
		t.Fatalf("want 5 numbered commands, got %d:\n%s", len(cmds), strings.Join(lines, "\n"))
	}
	return cmds
}

// shell runs a printed command exactly as a user pasting it would.
func shell(t *testing.T, command string) (stdout, stderr string, exit int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = quickstartEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sh -c %q: %v", command, err)
	}
	return out.String(), errb.String(), 0
}

// httpStatus is the status code of "curl -i" output ("" if none).
func httpStatus(out string) string {
	if f := strings.Fields(strings.SplitN(out, "\n", 2)[0]); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
		return f[1]
	}
	return ""
}

// accessEntry waits for a handshake refusal with reason (and serial, if
// given) in the gateway's access log.
func accessEntry(t *testing.T, path, reason, serial string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(data), "\n") {
			var e struct{ Kind, Decision, Reason, Serial string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Kind == "handshake" && e.Decision == "deny" && e.Reason == reason && (serial == "" || e.Serial == serial) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake refusal %q (serial %q) in %s:\n%s", reason, serial, path, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serialOf(t *testing.T, certPath string) string {
	t.Helper()
	data, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].SerialNumber.Text(16)
}

// demoScenario executes the printed commands: 200 with the identity
// echoed, 403, 401 without a certificate, the revoke, and 403 "revoked"
// for the allowed client within two seconds of it.
// revoke runs the revoke command.
func demoScenario(t *testing.T, td string, cmds quickstartCommands, allowedCert, accessLog string, revoke func(string) (string, string, int)) {
	t.Helper()
	out, errs, code := shell(t, cmds.Allowed)
	if code != 0 || httpStatus(out) != "200" {
		t.Fatalf("allowed: exit %d status %q\n%s%s", code, httpStatus(out), out, errs)
	}
	for _, want := range []string{
		`"identity": "spiffe://` + td + `/demo/allowed"`,
		`"x_forwarded_client_cert": "By=spiffe://` + td + `/gateway/quickstart;`,
		`"serial": "` + serialOf(t, allowedCert) + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("allowed: the echo lacks %s:\n%s", want, out)
		}
	}
	out, errs, code = shell(t, cmds.Denied)
	if code != 0 || httpStatus(out) != "403" || !strings.Contains(out, `"code":"forbidden"`) || !strings.Contains(out, `"identity":"spiffe://`+td+`/demo/denied"`) {
		t.Fatalf("denied: exit %d status %q\n%s%s", code, httpStatus(out), out, errs)
	}
	// The gateway completes the handshake of a client it refuses and
	// answers with the reason.
	out, errs, code = shell(t, cmds.NoCertificate)
	if code != 0 || httpStatus(out) != "401" || !strings.Contains(out, `"code":"no_certificate"`) {
		t.Fatalf("no certificate: exit %d status %q, want 401 no_certificate\n%s%s", code, httpStatus(out), out, errs)
	}
	accessEntry(t, accessLog, "no_certificate", "")

	serial := serialOf(t, allowedCert)
	out, errs, code = revoke(cmds.Revoke)
	if code != 0 || out != fmt.Sprintf("revoked %s (keyCompromise)\n", serial) {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
	}
	revoked := time.Now()
	for {
		out, errs, code = shell(t, cmds.Allowed)
		if code == 0 && httpStatus(out) == "403" && strings.Contains(out, `"code":"revoked"`) {
			break
		}
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("allowed after revoke: still exit %d status %q 2 s after the revoke returned\n%s%s", code, httpStatus(out), out, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the revoked client was refused %s after the revoke returned", time.Since(revoked).Round(time.Millisecond))
	accessEntry(t, accessLog, "revoked", serial)
}

// TestQuickstart runs the certgate binary as a user would: "certgate
// quickstart", then executes the commands it printed with the real curl,
// stops it with SIGINT, runs it again with --json on the same directory,
// executes the commands again, and stops it with SIGTERM.
func TestQuickstart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("curl is not on PATH: %v", err)
	}
	bin := testenv.Certgate(t)
	dir := filepath.Join(t.TempDir(), "demo")
	gwAddr := testenv.FreeAddr(t)

	// First run: a new CA, the text form.
	p := startQuickstart(t, bin, "--dir", dir, "--listen", gwAddr, "--server-listen", "127.0.0.1:0")
	lines, took := p.readUntil(t, func(l string) bool { return strings.HasPrefix(l, "Ctrl-C stops everything.") })
	t.Logf("first run (new CA) ready after %s", took.Round(time.Millisecond))
	if lines[0] != "created a demo CA for spiffe://example.org in "+dir {
		t.Fatalf("first line %q", lines[0])
	}
	n := printedCommands(t, lines)
	if n[5] != n[1] {
		t.Fatalf("command 5 %q is not command 1 %q", n[5], n[1])
	}
	cmds := quickstartCommands{Allowed: n[1], Denied: n[2], NoCertificate: n[3], Revoke: n[4]}
	// The binary is not on PATH: the command names its own path (a
	// temporary path that needs no shell quoting).
	if want := bin + " cert revoke --dir " + dir + " --identity spiffe://example.org/demo/allowed --reason keyCompromise"; cmds.Revoke != want {
		t.Fatalf("revoke command %q\nwant %q (certgate is not on PATH: the binary's own path)", cmds.Revoke, want)
	}
	runPrinted := func(c string) (string, string, int) {
		// The command is executed as printed. Were it "go run
		// ./cmd/certgate ..." (quickstart itself started by go run), the
		// test would put the binary it built in place of that prefix.
		if rest, ok := strings.CutPrefix(c, "go run ./cmd/certgate "); ok {
			c = bin + " " + rest
		}
		return shell(t, c)
	}
	accessLog := filepath.Join(dir, "gateway", "access.log")
	allowedCert := filepath.Join(dir, "clients", "allowed", "cert.pem")
	demoScenario(t, "example.org", cmds, allowedCert, accessLog, runPrinted)
	for _, key := range []string{"clients/allowed/key.pem", "clients/denied/key.pem", "gateway/key.pem", "admin/key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, key)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want mode 0600", key, err)
		}
	}
	p.stop(t, os.Interrupt) // after which stderr is complete
	if !strings.HasPrefix(p.stderr.String(), `warning: no CERTGATE_PASSPHRASE: the demo CA keys use the well-known passphrase "certgate-quickstart-demo-only" (demo only)`+"\n") {
		t.Fatalf("no demo passphrase warning:\n%s", p.stderr.String())
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "certgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	serverAddr := regexp.MustCompile(`(?m)^  listen: (\S+)$`).FindSubmatch(cfg)
	if serverAddr == nil {
		t.Fatalf("no server.listen in certgate.yaml:\n%s", cfg)
	}
	for _, addr := range []string{gwAddr, string(serverAddr[1])} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still bound after SIGINT: %v", addr, err)
		}
		ln.Close()
	}

	// Second run: the same directory, --json, a gateway on a free port.
	// The allowed client of the first run is revoked; quickstart enrolls
	// afresh, so the scenario works again.
	p = startQuickstart(t, bin, "--dir", dir, "--listen", "127.0.0.1:0", "--json")
	lines, took = p.readUntil(t, func(string) bool { return true })
	t.Logf("second run (reused CA) ready after %s", took.Round(time.Millisecond))
	// The object as a script reads it: exactly these keys, these values.
	var info map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &info); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, lines[0])
	}
	gwURL, _ := info["gateway_url"].(string)
	ready, _ := info["ready_ms"].(float64)
	if !strings.HasPrefix(gwURL, "https://127.0.0.1:") || gwURL == "https://127.0.0.1:0" || ready <= 0 {
		t.Fatalf("--json: gateway_url %q, ready_ms %v", gwURL, info["ready_ms"])
	}
	delete(info, "gateway_url")
	delete(info, "ready_ms")
	upstream, _ := info["upstream_url"].(string)
	client := func(name string) map[string]any {
		d := filepath.Join(dir, "clients", name)
		return map[string]any{"identity": "spiffe://example.org/demo/" + name, "dir": d, "cert": filepath.Join(d, "cert.pem"), "key": filepath.Join(d, "key.pem")}
	}
	commands, _ := info["commands"].(map[string]any)
	want := map[string]any{
		"server_url": "https://" + string(serverAddr[1]), "upstream_url": upstream, "trust_domain": "example.org", "dir": dir,
		"bundle": filepath.Join(dir, "bundle.pem"), "admin_dir": filepath.Join(dir, "admin"),
		"access_log": accessLog, "log": filepath.Join(dir, "quickstart.log"),
		"clients":  map[string]any{"allowed": client("allowed"), "denied": client("denied")},
		"commands": map[string]any{"allowed": commands["allowed"], "denied": commands["denied"], "no_certificate": commands["no_certificate"], "revoke": cmds.Revoke},
	}
	if !strings.HasPrefix(upstream, "http://127.0.0.1:") || !reflect.DeepEqual(info, want) {
		t.Fatalf("--json:\n%v\nwant\n%v", info, want)
	}
	jsonCmds := quickstartCommands{Allowed: commands["allowed"].(string), Denied: commands["denied"].(string),
		NoCertificate: commands["no_certificate"].(string), Revoke: cmds.Revoke}
	// stderr reaches the test through a copying goroutine, possibly after
	// the stdout line: wait for it.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), "Ctrl-C stops everything."); {
		if time.Now().After(deadline) {
			t.Fatalf("--json: the human text is not on stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "reusing the demo CA for spiffe://example.org in "+dir+"\n") ||
		!strings.Contains(p.stderr.String(), "\n"+jsonCmds.Allowed+"\n") {
		t.Fatalf("--json: the human text on stderr lacks the reuse note or the commands:\n%s", p.stderr.String())
	}
	demoScenario(t, "example.org", jsonCmds, filepath.Join(dir, "clients", "allowed", "cert.pem"), accessLog, runPrinted)
	p.stop(t, syscall.SIGTERM)
	for extra := range p.lines {
		t.Fatalf("--json printed more than one line on stdout: %q", extra)
	}
}

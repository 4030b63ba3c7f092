package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/testenv"
)

// quickstartReadyBound is a loose sanity bound on time-to-ready in tests;
// the figure itself is measured in docs/benchmarks.md ("Quickstart").
const quickstartReadyBound = 20 * time.Second

// TestQuickstartInProcess runs quickstart through run(), as the other CLI
// tests do: when the binary is not certgate (a test binary, or go run) the
// printed revoke command is "go run ... ./cmd/certgate ARGS", and ARGS run
// through the same run() revoke the allowed client. The whole demo
// scenario with curl runs against the real binary in
// internal/integration (TestQuickstart).
func TestQuickstartInProcess(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"quickstart", "--dir", dir, "--listen", "127.0.0.1:0", "--server-listen", "127.0.0.1:0", "--trust-domain", "demo.test", "--json"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	var info quickstartInfo
	if err := json.NewDecoder(pr).Decode(&info); err != nil {
		t.Fatalf("--json: %v\nstderr:\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	if strings.Contains(stderr.String(), "warning: no CERTGATE_PASSPHRASE") {
		t.Fatalf("warned about the passphrase although CERTGATE_PASSPHRASE is set:\n%s", stderr.String())
	}
	_, args, ok := strings.Cut(info.Commands.Revoke, " ./cmd/certgate ")
	if !strings.HasPrefix(info.Commands.Revoke, "go run ") || !ok {
		t.Fatalf("revoke command %q, want go run ... ./cmd/certgate ...", info.Commands.Revoke)
	}
	serial := testenv.ReadLeaf(t, info.Clients["allowed"].Dir).SerialNumber.Text(16)
	if out, errs, code := cli(t, strings.Fields(args)...); code != 0 || out != "revoked "+serial+" (keyCompromise)\n" {
		t.Fatalf("the printed revoke command: exit %d\n%s%s", code, out, errs)
	}
	// The gateway, which has an identity of its own, is a witness of the
	// server's audit log: it remembers the checkpoint it saw at start.
	waitFor(t, "the gateway's audit witness", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "gateway", auditcheck.WitnessFile))
		return err == nil && bytes.HasPrefix(b, []byte("demo.test/certgate/audit\n"))
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("quickstart did not stop within 15 s of the cancellation")
	}
}

func TestQuickstartRefuses(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	b := busy.Addr().String()
	dir := filepath.Join(t.TempDir(), "demo")
	missing := filepath.Join(t.TempDir(), "missing")

	_, stderr, code := cli(t, "quickstart", "--dir", dir, "--passphrase-file", missing)
	if want := "certgate: --passphrase-file: open " + missing + ": no such file or directory\n"; code != 1 || stderr != want {
		t.Fatalf("missing passphrase file: exit %d %q\nwant %q", code, stderr, want)
	}
	_, stderr, code = cli(t, "quickstart", "--dir", dir, "--server-listen", b)
	want := `certgate: --server-listen ` + b + `: listen tcp ` + b + `: bind: address already in use (is another quickstart running? --server-listen 127.0.0.1:0 picks a free port)` + "\n"
	if code != 1 || !strings.HasSuffix(stderr, want) {
		t.Fatalf("busy server port: exit %d %q\nwant suffix %q", code, stderr, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused quickstart left %s behind: %v", dir, err)
	}

	// A busy gateway port fails after the CA was made, and stops the rest.
	_, stderr, code = cli(t, "quickstart", "--dir", dir, "--listen", b, "--server-listen", "127.0.0.1:0")
	want = "certgate: gateway: listen tcp " + b + ": bind: address already in use\n"
	if code != 1 || !strings.HasSuffix(stderr, want) {
		t.Fatalf("busy gateway port: exit %d %q\nwant suffix %q", code, stderr, want)
	}

	// The CA made with the demo passphrase does not open with another.
	t.Setenv("CERTGATE_PASSPHRASE", "not the demo passphrase")
	_, stderr, code = cli(t, "quickstart", "--dir", dir, "--server-listen", "127.0.0.1:0")
	if want := "certgate: cadir: " + filepath.Join(dir, "ca", "intermediate.key") + ": wrong passphrase\n"; code != 1 || !strings.HasSuffix(stderr, want) {
		t.Fatalf("wrong passphrase: exit %d %q\nwant suffix %q", code, stderr, want)
	}
}

// TestQuickstartStopWhileStarting stops quickstart at different moments of
// its start (CA creation, enrollment, gateway start) and once ready: every
// stop is clean, exit 0, with nothing left listening.
func TestQuickstartStopWhileStarting(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	const whenReady = -1
	for _, after := range []time.Duration{0, 30 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, whenReady} {
		name := after.String()
		if after == whenReady {
			name = "ready"
		}
		t.Run(name, func(t *testing.T) {
			gw := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"quickstart", "--dir", filepath.Join(t.TempDir(), "demo"), "--listen", gw, "--server-listen", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
			}()
			if after == whenReady {
				deadline := time.Now().Add(quickstartReadyBound)
				for !strings.Contains(stdout.String(), "Ctrl-C stops everything.") {
					if time.Now().After(deadline) {
						t.Fatalf("not ready within %s:\n%s%s", quickstartReadyBound, stdout.String(), stderr.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
			} else {
				time.Sleep(after)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 || !strings.HasSuffix(stderr.String(), "quickstart stopped\n") {
					t.Fatalf("exit %d\nstderr:\n%s", code, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("quickstart did not stop within 15 s")
			}
			ln, err := net.Listen("tcp", gw)
			if err != nil {
				t.Fatalf("the gateway address is still bound: %v", err)
			}
			ln.Close()
		})
	}
}

// TestQuickstartServesStatusListener: a reused directory whose config has
// server.status_listen names http://STATUS/crl/... in every certificate;
// quickstart serves that listener (it used to write the URL and serve
// nothing), so the demo clients' CRL distribution point answers.
func TestQuickstartServesStatusListener(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "demo")
	status := freeAddr(t)
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "demo.test", "--listen", freeAddr(t), "--status-listen", status)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"quickstart", "--dir", dir, "--listen", "127.0.0.1:0", "--json"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	defer func() {
		cancel()
		<-done
	}()
	var info quickstartInfo
	if err := json.NewDecoder(pr).Decode(&info); err != nil {
		t.Fatalf("--json: %v\nstderr:\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	leaf := testenv.ReadLeaf(t, info.Clients["allowed"].Dir)
	cdp := leaf.CRLDistributionPoints
	if len(cdp) != 1 || !strings.HasPrefix(cdp[0], "http://"+status+"/crl/") {
		t.Fatalf("CRL distribution points %v, want http://%s/crl/...", cdp, status)
	}
	resp, err := http.Get(cdp[0])
	if err != nil {
		t.Fatalf("GET %s: %v", cdp[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", cdp[0], resp.StatusCode, body)
	}
	if _, err := x509.ParseRevocationList(body); err != nil {
		t.Fatalf("CRL from the status listener: %v", err)
	}
}

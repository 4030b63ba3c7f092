package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Passphrase is the CA passphrase of the CA directories tests make with
// `certgate init`; [CLI] and [StartServerProcess] pass it.
const Passphrase = "correct horse battery staple"

var certgate struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

// Certgate returns the path of a certgate binary built from this module,
// once per test binary; [RemoveCertgate] removes it. A test that runs
// certgate as a process (to kill it, or to run several) uses it; one that
// needs no process runs the packages in-process instead.
func Certgate(t testing.TB) string {
	t.Helper()
	certgate.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			certgate.err = err
			return
		}
		if certgate.dir, err = os.MkdirTemp("", "certgate-bin-"); err != nil {
			certgate.err = err
			return
		}
		certgate.bin = filepath.Join(certgate.dir, "certgate")
		certgate.out, certgate.err = exec.Command(goTool, "build", "-o", certgate.bin, "github.com/certgate/certgate/cmd/certgate").CombinedOutput()
	})
	if err := certgate.err; err != nil {
		if _, ok := err.(*exec.Error); ok {
			t.Skipf("the go tool is not on PATH: %v", err)
		}
		t.Fatalf("go build ./cmd/certgate: %v\n%s", err, certgate.out)
	}
	return certgate.bin
}

// RemoveCertgate removes the binary Certgate built, if any: call it from
// TestMain after the tests ran.
func RemoveCertgate() {
	if certgate.dir != "" {
		os.RemoveAll(certgate.dir)
	}
}

// CLI runs the certgate binary bin with args (CERTGATE_PASSPHRASE set to
// [Passphrase]) and returns its stdout, stderr and exit code.
func CLI(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CERTGATE_PASSPHRASE="+Passphrase)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("certgate %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// MustCLI is CLI failing the test unless certgate exits 0; it returns
// stdout.
func MustCLI(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, errs, code := CLI(t, bin, args...)
	if code != 0 {
		t.Fatalf("certgate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// ServerProcess is a "certgate server" child process.
type ServerProcess struct {
	URL  string // where it said it listens
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	stderr bytes.Buffer
}

// Log is what the server wrote on stderr so far.
func (p *ServerProcess) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type serverStderr struct{ p *ServerProcess }

func (w serverStderr) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// StartServerProcess runs "certgate server --dir dir" with more arguments
// and returns once it answers /healthz over TLS, verified against roots.
// The process is killed when the test ends.
func StartServerProcess(ctx context.Context, t testing.TB, bin, dir string, roots *x509.CertPool, args ...string) *ServerProcess {
	t.Helper()
	p := &ServerProcess{done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"server", "--dir", dir}, args...)...)
	p.cmd.Env = append(os.Environ(), "CERTGATE_PASSPHRASE="+Passphrase)
	p.cmd.Stderr = serverStderr{p}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if after, ok := strings.CutPrefix(sc.Text(), "certgate server listening on "); ok {
				listening <- after
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.URL = <-listening:
	case <-p.done:
		t.Fatalf("certgate server exited: %s\n%s", p.cmd.ProcessState, p.Log())
	case <-ctx.Done():
		t.Fatalf("certgate server did not start:\n%s", p.Log())
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("certgate server exited: %s\n%s", p.cmd.ProcessState, p.Log())
		case <-ctx.Done():
			t.Fatalf("certgate server never became healthy: %v\n%s", err, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL: no shutdown, no flush, nothing but what is on disk.
func (p *ServerProcess) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// Stop asks for a graceful shutdown (SIGTERM) and waits for it; the
// server must exit 0.
func (p *ServerProcess) Stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("certgate server did not stop on SIGTERM:\n%s", p.Log())
	}
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("certgate server: %s\n%s", p.cmd.ProcessState, p.Log())
	}
}

// Done is closed when the process has exited.
func (p *ServerProcess) Done() <-chan struct{} { return p.done }

package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is any certgate command run as a child process, its output
// kept for the test to wait on and read: a long-running command a test
// signals, or one it stops.
type Process struct {
	Name           string
	Stdout, Stderr SyncBuffer
	cmd            *exec.Cmd
	done           chan struct{}
}

// StartProcess runs bin with args (CERTGATE_PASSPHRASE set to
// [Passphrase], plus env) and returns at once; the process is killed
// when the test ends if it is still running.
func StartProcess(t testing.TB, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: strings.Join(append([]string{"certgate"}, args...), " "), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(append(os.Environ(), "CERTGATE_PASSPHRASE="+Passphrase), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.Stdout, &p.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// WaitFor waits until the process has written want on stdout or stderr
// and returns that stream's text so far; it fails the test if the
// process exits first or ctx ends.
func (p *Process) WaitFor(ctx context.Context, t testing.TB, want string) string {
	t.Helper()
	for {
		if out := p.Stdout.String(); strings.Contains(out, want) {
			return out
		}
		if errs := p.Stderr.String(); strings.Contains(errs, want) {
			return errs
		}
		select {
		case <-p.done:
			if out, errs := p.Stdout.String(), p.Stderr.String(); strings.Contains(out+errs, want) {
				return out + errs
			}
			t.Fatalf("%s exited (%s) before writing %q:\nstdout:\n%s\nstderr:\n%s", p.Name, p.cmd.ProcessState, want, p.Stdout.String(), p.Stderr.String())
		case <-ctx.Done():
			t.Fatalf("%s never wrote %q:\nstdout:\n%s\nstderr:\n%s", p.Name, want, p.Stdout.String(), p.Stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %s: %v", p.Name, sig, err)
	}
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to 20 s for the process to exit; it
// must exit 0.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.Name, p.Stderr.String())
	}
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("%s: %s after SIGTERM\nstderr:\n%s", p.Name, p.cmd.ProcessState, p.Stderr.String())
	}
}

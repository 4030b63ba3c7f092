package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	spiffeworkload "github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/certgate/certgate/internal/pemutil"
)

// TestMain lets the test binary be certgate itself: testscript runs the
// scripts' "certgate" command by executing this binary under that name,
// which runs main's run in a new process (as filippo.io/age's cmd/age
// does). Every other test runs as usual.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"certgate": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			ignoreHangup()
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
		// certgate-killed-after STEP ARGS... is certgate ARGS... killed
		// with SIGKILL right after the durable step STEP of a "certgate
		// ca" rotation (see calife), as a crash or kill -9 would.
		"certgate-killed-after": func() {
			if len(os.Args) < 2 {
				fmt.Fprintln(os.Stderr, "usage: certgate-killed-after STEP ARGS...")
				os.Exit(2)
			}
			step := os.Args[1]
			root := newRootCmdWith(streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, func(s string) {
				if s == step {
					fmt.Fprintf(os.Stderr, "killed after %s\n", s)
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {} // the signal is on its way
				}
			})
			root.SetArgs(os.Args[2:])
			if err := root.ExecuteContext(context.Background()); err != nil {
				fmt.Fprintf(os.Stderr, "certgate: %v\n", err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "step %s never came\n", step)
			os.Exit(3)
		},
	})
}

// TestScripts runs the CLI scenarios in testdata/*.txt: what an operator
// types and what certgate answers, usage errors included. Scenarios that
// need a server start `certgate server` in the background (exec ... &) and
// wait for it with waitserver.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
			e.Setenv("SCHEMA", latestSchema)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"freeaddr":   cmdFreeAddr,
			"waitserver": cmdWaitServer,
			"perm":       cmdPerm,
			"serial":     cmdSerial,
			"envstdout":  cmdEnvStdout,
			"fetchsvid":  cmdFetchSVID,
		},
	})
}

// freeaddr VAR sets VAR to a 127.0.0.1 address nothing listens on.
func cmdFreeAddr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeaddr VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], ln.Addr().String())
	ts.Check(ln.Close())
}

// waitserver ADDR waits up to 30 s for a TLS server on ADDR to complete a
// handshake (not verified: the scenario's commands verify it).
func cmdWaitServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitserver ADDR")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := &net.Dialer{Timeout: time.Second}
		c, err := tls.DialWithDialer(d, "tcp", args[0], &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no TLS server on %s after 30 s: %v", args[0], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// perm FILE MODE checks FILE's permission bits, e.g. perm key.pem 0600.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o; want %s%#o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// serial CERT VAR sets VAR to the serial number (hex) of the first
// certificate in the PEM file CERT.
func cmdSerial(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: serial CERT VAR")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	certs, err := pemutil.ParseCertificates(b)
	ts.Check(err)
	ts.Setenv(args[1], certs[0].SerialNumber.Text(16))
}

// envstdout VAR sets VAR to the last command's standard output, less its
// trailing newline: a token that `certgate token create` printed.
func cmdEnvStdout(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: envstdout VAR")
	}
	ts.Setenv(args[0], strings.TrimRight(ts.ReadFile("stdout"), "\n"))
}

// fetchsvid ADDR asks the SPIFFE Workload API at ADDR (unix:///path) for
// an X.509 SVID with go-spiffe, as any SPIFFE workload would, and prints
// its SPIFFE ID; it waits up to 30 s for the socket. "! fetchsvid" expects
// a refusal and prints it.
func cmdFetchSVID(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: fetchsvid ADDR")
	}
	path := strings.TrimPrefix(args[0], "unix://")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil || time.Now().After(deadline) {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := spiffeworkload.FetchX509SVID(ctx, spiffeworkload.WithAddr(args[0]))
	switch {
	case err != nil && neg:
		fmt.Fprintln(ts.Stdout(), err)
	case err != nil:
		ts.Fatalf("fetchsvid: %v", err)
	case neg:
		ts.Fatalf("fetchsvid: got %s, want a refusal", svid.ID)
	default:
		fmt.Fprintln(ts.Stdout(), svid.ID)
	}
}

// certgateBinary is a certgate executable for tests that run it as a
// process: this test binary, which TestMain put on PATH under that name.
func certgateBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("certgate")
	if err != nil {
		t.Fatalf("certgate is not on PATH (TestMain puts this test binary there): %v", err)
	}
	return p
}

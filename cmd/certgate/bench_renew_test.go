package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchRenew runs small renewal loads (full handshakes, resumed
// sessions, a storm) against a real server over mTLS and checks the
// reports and the store. The server runs in this process, so --server-pid
// is this process.
func TestBenchRenew(t *testing.T) {
	dir := startServer(t)
	for _, c := range []struct {
		storm, resume bool
		want          []string
	}{
		{want: []string{"renewals     20 sent, 20 ok, 0 failed in ", "connections  one per renewal, full handshake expected (0 resumed), 4 renewals in flight\n", "server CPU   "}},
		{resume: true, want: []string{"renewals     20 sent, 20 ok, 0 failed in ", "resumed TLS session expected (20 resumed)"}},
		{storm: true, want: []string{"storm        20 agents, each renewing once at a random moment of 500ms\n", "renewals     20 sent, 20 ok, 0 failed in "}},
	} {
		var out, errw bytes.Buffer
		o := benchRenewOptions{dir: dir, clients: 4, count: 20, duration: time.Minute, window: 500 * time.Millisecond, keyType: "ecdsa-p256", resume: c.resume, serverPID: os.Getpid()}
		if err := runBenchRenew(context.Background(), &out, &errw, o, c.storm); err != nil {
			t.Fatalf("bench renew (storm %v, resume %v): %v\n%s%s", c.storm, c.resume, err, out.String(), errw.String())
		}
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("report lacks %q:\n%s", want, out.String())
			}
		}
	}
	// 60 agents, each enrolled once and renewed once.
	list := mustCLI(t, "cert", "list", "--dir", dir, "--prefix", "spiffe://example.org/bench")
	if n := strings.Count(list, "spiffe://example.org/bench/agent-"); n != 120 {
		t.Fatalf("%d bench certificates listed, want 120:\n%s", n, list)
	}
}

func TestBenchRenewFlags(t *testing.T) {
	for _, c := range []struct {
		storm bool
		args  []string
		want  string
	}{
		{false, []string{}, "--dir: no certgate directory given (flag --dir or CERTGATE_DIR)"},
		{false, []string{"--dir", "x", "--clients", "0"}, "--clients: 0: need at least one client"},
		{false, []string{"--dir", "x", "--count", "0"}, "--count: 0: need at least one agent"},
		{false, []string{"--dir", "x", "--duration", "-1s"}, "--duration: -1s is negative"},
		{false, []string{"--dir", "x", "--server-pid", "-1"}, "--server-pid: loadgen: CPU time of process -1: open /proc/-1/stat: no such file or directory"},
		{false, []string{"--dir", "x", "--key-type", "dsa"}, `--key-type: unsupported key type "dsa" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)`},
		{true, []string{"--dir", "x", "--agents", "0"}, "--agents: 0: need at least one agent"},
		{true, []string{"--dir", "x", "--window", "0s"}, "--window: 0s is not positive"},
	} {
		t.Setenv("CERTGATE_DIR", "")
		var out, errw bytes.Buffer
		s := streams{in: strings.NewReader(""), out: &out, err: &errw}
		cmd := newBenchRenewCmd(s)
		if c.storm {
			cmd = newBenchStormCmd(s)
		}
		cmd.SetArgs(c.args)
		cmd.SetOut(&out)
		cmd.SetErr(&errw)
		err := cmd.Execute()
		if err == nil || err.Error() != c.want {
			t.Errorf("bench %s %v: %v, want %q", cmd.Name(), c.args, err, c.want)
		}
	}
}

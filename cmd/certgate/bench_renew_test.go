package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchRenewCmd runs certgate bench renew and bench storm at a small
// scale against the real server; the figures themselves are
// internal/bench's tests.
func TestBenchRenewCmd(t *testing.T) {
	dir := startServer(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "renew", "--dir", dir, "--clients", "2", "--count", "4", "--resume"}, "resumed TLS session expected (4 resumed)"},
		{[]string{"bench", "storm", "--dir", dir, "--agents", "4", "--window", "200ms"}, "storm        4 agents, each renewing once at a random moment of 200ms\n"},
	} {
		out, errs, code := cli(t, c.args...)
		if code != 0 || !strings.Contains(out, "renewals     4 sent, 4 ok, 0 failed in ") || !strings.Contains(out, c.want) {
			t.Fatalf("%v: exit %d\n%s%s", c.args, code, out, errs)
		}
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
		{false, []string{"--dir", "x", "--server-pid", "-1"}, "--server-pid: bench: CPU time of process -1: open /proc/-1/stat: no such file or directory"},
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

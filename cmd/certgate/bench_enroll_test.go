package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestBenchEnrollCmd runs certgate bench enroll, which reads its target
// from the CA directory, at a small scale against the real server; the
// figures themselves are internal/bench's tests.
func TestBenchEnrollCmd(t *testing.T) {
	dir := startServer(t)
	out, errs, code := cli(t, "bench", "enroll", "--dir", dir, "--clients", "2", "--count", "6", "--server-pid", strconv.Itoa(os.Getpid()))
	if code != 0 || !strings.Contains(out, "enrollments  6 sent, 6 ok, 0 failed in ") || !strings.Contains(out, "server CPU   ") ||
		!strings.HasPrefix(errs, "preparing 6 tokens and ecdsa-p256 CSRs (not measured)...\n") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	list := mustCLI(t, "cert", "list", "--dir", dir, "--prefix", "spiffe://example.org/bench")
	if n := strings.Count(list, "spiffe://example.org/bench/client-"); n != 6 {
		t.Fatalf("%d bench certificates listed, want 6:\n%s", n, list)
	}
}

func TestBenchEnrollFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--dir: no certgate directory given (flag --dir or CERTGATE_DIR)"},
		{[]string{"--dir", "x", "--clients", "0"}, "--clients: 0: need at least one client"},
		{[]string{"--dir", "x", "--count", "0"}, "--count: 0: need at least one enrollment"},
		{[]string{"--dir", "x", "--duration", "-1s"}, "--duration: -1s is negative"},
		{[]string{"--dir", "x", "--server-pid", "-1"}, "--server-pid: bench: CPU time of process -1: open /proc/-1/stat: no such file or directory"},
		{[]string{"--dir", "x", "--key-type", "dsa"}, `--key-type: unsupported key type "dsa" (want one of ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)`},
	} {
		t.Setenv("CERTGATE_DIR", "")
		var out, errw bytes.Buffer
		cmd := newBenchEnrollCmd(streams{in: strings.NewReader(""), out: &out, err: &errw})
		cmd.SetArgs(c.args)
		cmd.SetOut(&out)
		cmd.SetErr(&errw)
		err := cmd.Execute()
		if err == nil || err.Error() != c.want {
			t.Errorf("bench enroll %v: %v, want %q", c.args, err, c.want)
		}
	}
}

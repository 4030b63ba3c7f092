package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestBenchRevoke runs certgate bench revoke at a small scale against the
// real server: two gateway processes, five revocations.
func TestBenchRevoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and starts gateway processes")
	}
	bin := buildCertgate(t)
	dir := startServer(t)
	out, errs, code := cli(t, "bench", "revoke", "--dir", dir, "--certgate", bin, "--gateways", "2", "--revocations", "5", "--timeout", "2m", "--work-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, errs, out)
	}
	t.Log(out)
	if !strings.Contains(out, "2 certgate gateway processes following https://127.0.0.1:") ||
		!regexp.MustCompile(`(?m)^  p50 \S+  p90 \S+  p99 \S+  max \S+$`).MatchString(out) ||
		!strings.Contains(out, "each connection closed (10): ") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestBenchRevokeFlags(t *testing.T) {
	t.Setenv("CERTGATE_DIR", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "--dir: no certgate directory given (flag --dir or CERTGATE_DIR)"},
		{[]string{"--dir", dir, "--gateways", "0"}, "--gateways: 0: need 1 to 50"},
		{[]string{"--dir", dir, "--revocations", "0"}, "--revocations: 0: need 1 to 10000"},
		{[]string{"--dir", dir, "--timeout", "0s"}, "--timeout: 0s must be positive"},
	} {
		_, errs, code := cli(t, append([]string{"bench", "revoke"}, tc.args...)...)
		if code != 1 || errs != "certgate: "+tc.err+"\n" {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, code, errs, tc.err)
		}
	}
}

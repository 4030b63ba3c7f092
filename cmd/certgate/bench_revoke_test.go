package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchRevoke runs certgate bench revoke at a small scale against the
// real server: two gateway processes, five revocations.
func TestBenchRevoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds certgate and starts gateway processes")
	}
	bin := buildCertgate(t)
	dir := startServer(t)
	var out, errw syncBuffer
	err := runBenchRevoke(context.Background(), &out, &errw, benchRevokeOptions{
		dir: dir, certgate: bin, gateways: 2, revocations: 5, timeout: 2 * time.Minute, work: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, errw.String(), out.String())
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "2 certgate gateway processes following https://127.0.0.1:") ||
		!regexp.MustCompile(`(?m)^  p50 \S+  p90 \S+  p99 \S+  max \S+$`).MatchString(out.String()) ||
		!strings.Contains(out.String(), "each connection closed (10): ") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestBenchRevokeFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		o   benchRevokeOptions
		err string
	}{
		{benchRevokeOptions{gateways: 5, revocations: 100, timeout: time.Minute}, "--dir: no certgate directory given (flag --dir or CERTGATE_DIR)"},
		{benchRevokeOptions{dir: dir, gateways: 0, revocations: 100, timeout: time.Minute}, "--gateways: 0: need 1 to 50"},
		{benchRevokeOptions{dir: dir, gateways: 5, revocations: 0, timeout: time.Minute}, "--revocations: 0: need 1 to 10000"},
		{benchRevokeOptions{dir: dir, gateways: 5, revocations: 100}, "--timeout: 0s must be positive"},
	} {
		err := runBenchRevoke(context.Background(), &syncBuffer{}, &syncBuffer{}, tc.o)
		if err == nil || err.Error() != tc.err {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.err)
		}
	}
}

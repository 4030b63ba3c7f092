package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBenchEnroll runs a small load against a real server over TLS and
// checks the report and the store. The server runs in this process, so
// --server-pid is this process.
func TestBenchEnroll(t *testing.T) {
	dir := startServer(t)
	var out, errw bytes.Buffer
	err := runBenchEnroll(context.Background(), &out, &errw, benchEnrollOptions{dir: dir, clients: 4, count: 40, duration: time.Minute, keyType: "ecdsa-p256", serverPID: os.Getpid()})
	if err != nil {
		t.Fatalf("bench enroll: %v\n%s%s", err, out.String(), errw.String())
	}
	for _, want := range []string{"enrollments  40 sent, 40 ok, 0 failed in ", "clients      4 over HTTP/1.1 keep-alive TLS (4 connections dialled, warm-up included)\n", "rate         ", "latency      p50 ", "server CPU   "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	list := mustCLI(t, "cert", "list", "--dir", dir, "--prefix", "spiffe://example.org/bench")
	if n := strings.Count(list, "spiffe://example.org/bench/client-"); n != 40 {
		t.Fatalf("%d bench certificates listed, want 40:\n%s", n, list)
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
		{[]string{"--dir", "x", "--server-pid", "-1"}, "--server-pid: loadgen: CPU time of process -1: open /proc/-1/stat: no such file or directory"},
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

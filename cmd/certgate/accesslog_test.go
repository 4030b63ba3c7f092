package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
)

// TestAccessLogVerifyCLI: an access log sealed with a key openssl made
// verifies with `certgate accesslog verify DIR --key PUB`, and the command
// fails, naming the segment, after a line is removed, a line is edited or
// a segment is removed.
func TestAccessLogVerifyCLI(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
	keyDir := t.TempDir()
	key, pub := filepath.Join(keyDir, "key.pem"), filepath.Join(keyDir, "pub.pem")
	for _, args := range [][]string{{"genpkey", "-algorithm", "ed25519", "-out", key}, {"pkey", "-in", key, "-pubout", "-out", pub}} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	data, _ := os.ReadFile(key)
	k, err := pemutil.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := checkpoint.NewSigner("certgate-access-log", k)
	if err != nil {
		t.Fatal(err)
	}
	seal := func() (string, []string) {
		dir := t.TempDir()
		l, err := accesslog.Open(accesslog.Options{Clock: clock.NewFake(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)),
			File: &accesslog.FileOptions{Path: filepath.Join(dir, "access.log"), MaxSize: 2000, Checkpoint: signer}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			l.Log(&accesslog.Entry{Kind: accesslog.KindHTTP, Path: fmt.Sprintf("/v1/invoices/%d", i), Status: 200})
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(filepath.Join(dir, "access-*.log"))
		if len(segs) < 3 {
			t.Fatalf("%d segments", len(segs))
		}
		return dir, segs
	}
	dir, _ := seal()
	out := mustCLI(t, "accesslog", "verify", dir, "--key", pub)
	if !strings.HasPrefix(out, "OK: "+filepath.Join(dir, "access.log")+": ") {
		t.Fatalf("output %q", out)
	}
	for name, c := range map[string]struct {
		tamper func(segs []string)
		want   string
	}{
		"removed line": {func(segs []string) {
			b, _ := os.ReadFile(segs[1])
			os.WriteFile(segs[1], b[bytes.IndexByte(b, '\n')+1:], 0o640)
		}, "lines were removed or added"},
		"edited line": {func(segs []string) {
			b, _ := os.ReadFile(segs[0])
			os.WriteFile(segs[0], bytes.Replace(b, []byte("invoices/1"), []byte("invoices/2"), 1), 0o640)
		}, "a line was edited"},
		"removed segment": {func(segs []string) {
			os.Remove(segs[1])
			os.Remove(segs[1] + ".checkpoint")
		}, "a segment is missing before"},
	} {
		dir, segs := seal()
		c.tamper(segs)
		out, errs, code := cli(t, "accesslog", "verify", dir, "--key", pub)
		if code == 0 || !strings.HasPrefix(out, "FAIL: ") || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d\n%s%s", name, code, out, errs)
		}
	}
	if _, errs, code := cli(t, "accesslog", "verify", dir); code == 0 || !strings.Contains(errs, `"key" not set`) {
		t.Errorf("without --key: exit %d %s", code, errs)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/testenv"
)

// TestVersionStamped builds certgate the way an operator does from a git
// clone (a fresh clone of this checkout's HEAD, -buildvcs=true) and checks
// that `certgate version` and `certgate --version` print the module
// version, the commit and its time exactly as git has them, whether the
// tree had uncommitted changes, and the Go version. A linked git worktree
// gets no VCS stamp from the go command, hence the clone; this checkout's
// uncommitted files are copied over it so the binary is the code under
// test.
func TestVersionStamped(t *testing.T) {
	gitTool, err := exec.LookPath("git")
	if err != nil {
		t.Skipf("git is not on PATH: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go tool is not on PATH: %v", err)
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gitTool, append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC") // the go command stamps the commit time in UTC
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := exec.Command(gitTool, "-C", "../..", "rev-parse", "HEAD").Run(); err != nil {
		t.Skipf("not a git checkout (%v): the VCS stamp cannot be checked", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	out, err := exec.Command(gitTool, "clone", "--quiet", "--no-hardlinks", "../..", clone).CombinedOutput()
	if err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	for _, f := range strings.Split(git("../..", "ls-files", "--cached", "--others", "--exclude-standard", "-z"), "\x00") {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("../..", f))
		if os.IsNotExist(err) {
			os.Remove(filepath.Join(clone, f)) // deleted, not yet committed
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(clone, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clone, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dirty := git(clone, "status", "--porcelain") != ""
	rev := git(clone, "rev-parse", "HEAD")
	when := git(clone, "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", "HEAD")
	bin := filepath.Join(t.TempDir(), "certgate")
	build := exec.Command(goTool, "build", "-buildvcs=true", "-o", bin, "./cmd/certgate")
	build.Dir = clone
	build.Env = append(os.Environ(), "TZ=UTC")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		got := testenv.MustCLI(t, bin, args...)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 5 {
			t.Fatalf("certgate %s printed %d lines:\n%s", args[0], len(lines), got)
		}
		// The go command stamps a pseudo-version from the commit (v0.0.0-TIME-REV12)
		// when no tag names it.
		if !strings.HasPrefix(lines[0], "certgate v") || !strings.Contains(lines[0], rev[:12]) {
			t.Errorf("certgate %s: version line %q does not name commit %s", args[0], lines[0], rev[:12])
		}
		revLine := "revision: " + rev
		if dirty {
			revLine += " (with uncommitted changes)"
		}
		want := []string{
			"module:   github.com/certgate/certgate",
			revLine,
			"time:     " + when,
			"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		}
		for i, w := range want {
			if lines[i+1] != w && (i != 3 || !strings.HasPrefix(lines[i+1], w+" (static")) {
				t.Errorf("certgate %s line %d = %q, want %q", args[0], i+2, lines[i+1], w)
			}
		}
	}
}

package secretin

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadFileEnvAndRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src := Source{What: "PKCS#12 password", FileFlag: "--password-file", Env: "SECRETIN_TEST_PW"}

	s := src
	s.File = write("pw", "from file\r\n")
	if got, err := Read(s); err != nil || got != "from file" {
		t.Fatalf("file: %q, %v", got, err)
	}
	// The file wins over the environment.
	t.Setenv("SECRETIN_TEST_PW", "from env")
	if got, _ := Read(s); got != "from file" {
		t.Fatalf("file then env: got %q", got)
	}
	if got, err := Read(src); err != nil || got != "from env" {
		t.Fatalf("env: %q, %v", got, err)
	}

	s.File = write("empty", "\n")
	if _, err := Read(s); err == nil || err.Error() != "--password-file: "+s.File+" is empty; an empty PKCS#12 password is refused" {
		t.Fatalf("empty: %v", err)
	}
	s.File = write("big", strings.Repeat("x", maxFile+1))
	if _, err := Read(s); err == nil || err.Error() != "--password-file: "+s.File+" is larger than 4096 bytes; a PKCS#12 password is one line" {
		t.Fatalf("oversized: %v", err)
	}
	s.File = filepath.Join(dir, "missing")
	if _, err := Read(s); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}

	// No file, no environment, and a TTY that is not a terminal.
	t.Setenv("SECRETIN_TEST_PW", "")
	notTTY, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer notTTY.Close()
	s = src
	s.TTY = notTTY
	_, err = Read(s)
	if !errors.Is(err, ErrNoSecret) || err.Error() != "no PKCS#12 password: use --password-file or $SECRETIN_TEST_PW, or run on a terminal to be asked" {
		t.Fatalf("none: %v", err)
	}
}

// TestPromptOnTerminal types the password at a real pseudo-terminal
// (script(1) gives the child one): asked twice without echo, a mismatch
// refused.
func TestPromptOnTerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	if os.Getenv("SECRETIN_CHILD") == "1" {
		p, err := Read(Source{What: "test password", FileFlag: "--password-file", Confirm: true})
		if err != nil {
			os.Stdout.WriteString("ERR " + err.Error() + "\n")
			os.Exit(0)
		}
		os.Stdout.WriteString("GOT " + p + "\n")
		os.Exit(0)
	}
	// run types each answer once its prompt is on the screen.
	run := func(answers ...string) string {
		cmd := exec.Command("script", "-qec", os.Args[0]+" -test.run=^TestPromptOnTerminal$", "/dev/null")
		cmd.Env = append(os.Environ(), "SECRETIN_CHILD=1")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		outPipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var seen strings.Builder
		buf := make([]byte, 256)
		for _, prompt := range []string{"Enter test password:", "Repeat test password:"} {
			for !strings.Contains(seen.String(), prompt) {
				n, err := outPipe.Read(buf)
				seen.Write(buf[:n])
				if err != nil {
					t.Fatalf("waiting for %q: %v; saw %q", prompt, err, seen.String())
				}
			}
			// The prompt is printed just before echo goes off: give the
			// child that moment, as a person's reaction time does.
			time.Sleep(300 * time.Millisecond)
			in.Write([]byte(answers[0] + "\n"))
			answers = answers[1:]
		}
		rest, _ := io.ReadAll(outPipe)
		seen.Write(rest)
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("script: %v\n%s", err, seen.String())
		}
		return seen.String()
	}
	out := run("hunter2", "hunter2")
	if !strings.Contains(out, "Enter test password:") || !strings.Contains(out, "Repeat test password:") || !strings.Contains(out, "GOT hunter2") {
		t.Fatalf("prompt: %q", out)
	}
	if strings.Count(out, "hunter2") != 1 {
		t.Fatalf("the password was echoed: %q", out)
	}
	if out := run("one", "two"); !strings.Contains(out, "ERR the two test passwords differ") {
		t.Fatalf("mismatch: %q", out)
	}
}

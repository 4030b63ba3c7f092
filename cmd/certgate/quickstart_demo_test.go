package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCertgateCommand(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "go.mod"), []byte("// the module\nmodule github.com/certgate/certgate\n\ngo 1.26\n"), 0o644)
	sub := filepath.Join(root, "cmd", "certgate")
	os.MkdirAll(sub, 0o755)
	other := t.TempDir()
	binDir := filepath.Join(t.TempDir(), "my bin")
	os.MkdirAll(binDir, 0o755)
	bin := filepath.Join(binDir, "certgate")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	otherBin := filepath.Join(t.TempDir(), "certgate")
	os.WriteFile(otherBin, []byte("#!/bin/sh\n"), 0o755)
	wd := func(d string) func() (string, error) { return func() (string, error) { return d, nil } }
	onPath := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	goBuild := filepath.Join(os.TempDir(), "go-build1234", "b001", "exe", "certgate")
	for name, tc := range map[string]struct {
		env  commandEnv
		want string
	}{
		"go run in the module root":  {commandEnv{goBuild, onPath(bin), wd(root)}, "go run ./cmd/certgate"},
		"go run below the root":      {commandEnv{goBuild, notOnPath, wd(sub)}, "go run -C " + shellQuote(root) + " ./cmd/certgate"},
		"go run outside the module":  {commandEnv{goBuild, notOnPath, wd(other)}, "go run ./cmd/certgate"},
		"a test binary":              {commandEnv{filepath.Join(other, "certgate.test"), onPath(bin), wd(root)}, "go run ./cmd/certgate"},
		"no executable path":         {commandEnv{"", notOnPath, wd(root)}, "go run ./cmd/certgate"},
		"this binary on PATH":        {commandEnv{bin, onPath(bin), wd(other)}, "certgate"},
		"not on PATH":                {commandEnv{bin, notOnPath, wd(other)}, "'" + bin + "'"},
		"another certgate on PATH":   {commandEnv{bin, onPath(otherBin), wd(other)}, "'" + bin + "'"},
		"no working directory (run)": {commandEnv{goBuild, notOnPath, func() (string, error) { return "", errors.New("gone") }}, "go run ./cmd/certgate"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := certgateCommand(tc.env); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/demo/bundle.pem":              "/tmp/demo/bundle.pem",
		"spiffe://example.org/demo/allowed": "spiffe://example.org/demo/allowed",
		"/tmp/my demo":                      "'/tmp/my demo'",
		"/tmp/it's":                         `'/tmp/it'\''s'`,
		"$HOME":                             "'$HOME'",
		"":                                  "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
		if out, _ := exec.Command("sh", "-c", "printf %s "+shellQuote(in)).Output(); string(out) != in {
			t.Errorf("sh reads %q back as %q", shellQuote(in), out)
		}
	}
}

func TestGatewayHosts(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8443":       "[localhost] [127.0.0.1 ::1]",
		":8443":                "[localhost] [127.0.0.1 ::1]",
		"0.0.0.0:8443":         "[localhost] [127.0.0.1 ::1]",
		"192.0.2.7:8443":       "[localhost] [127.0.0.1 ::1 192.0.2.7]",
		"Demo.Example.org:443": "[localhost demo.example.org] [127.0.0.1 ::1]",
		"LOCALHOST:443":        "[localhost] [127.0.0.1 ::1]",
	} {
		dns, ips := gatewayHosts(listen)
		if got := fmt.Sprint(dns, " ", ips); got != want {
			t.Errorf("gatewayHosts(%q) = %s, want %s", listen, got, want)
		}
	}
}

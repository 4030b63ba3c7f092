package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

const testPassphrase = "correct horse battery staple"

// cli runs one certgate command in-process and returns stdout, stderr and
// the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("certgate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// freeAddr is a 127.0.0.1 address nothing listens on now.
var freeAddr = testenv.FreeAddr

// startServer inits a CA in a new directory and serves it in-process until
// the test ends.
func startServer(t *testing.T) (dir string) {
	t.Helper()
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir = filepath.Join(t.TempDir(), "ca")
	addr := freeAddr(t)
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", addr)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "", []byte(testPassphrase), func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return dir
}

// TestEndToEnd walks the operator's path of issue 2 over real TLS:
// init -> server -> token -> enroll -> openssl verify -> list -> revoke ->
// listed as revoked -> audit verify -> tamper -> audit verify names it.
func TestEndToEnd(t *testing.T) {
	dir := startServer(t)
	id := "spiffe://example.org/svc/billing"
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", id, "--ttl", "10m"))
	if !strings.HasPrefix(tok, "cgt1.") || strings.Contains(tok, "\n") {
		t.Fatalf("token create printed %q, want the token alone", tok)
	}

	out := filepath.Join(t.TempDir(), "client")
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	fi, err := os.Stat(filepath.Join(out, "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v, want mode 0600", fi.Mode(), err)
	}
	// enroll remembers the server for the agent.
	if b, err := os.ReadFile(filepath.Join(out, "server.url")); err != nil || !strings.HasPrefix(string(b), "https://127.0.0.1:") {
		t.Fatalf("server.url: %q %v", b, err)
	}
	// The real openssl verifies the leaf for client auth.
	chainPEM, _ := os.ReadFile(filepath.Join(out, "cert.pem"))
	chain, err := pemutil.ParseCertificates(chainPEM)
	if err != nil || len(chain) != 2 {
		t.Fatalf("cert.pem: %d certificates, %v", len(chain), err)
	}
	leafFile, interFile := filepath.Join(t.TempDir(), "leaf.pem"), filepath.Join(t.TempDir(), "inter.pem")
	os.WriteFile(leafFile, pemutil.EncodeCertificates(chain[0]), 0o644)
	os.WriteFile(interFile, pemutil.EncodeCertificates(chain[1]), 0o644)
	openssl := testenv.RequirePeer(t, "openssl")
	cmd := exec.Command(openssl, "verify", "-CAfile", filepath.Join(out, "bundle.pem"), "-untrusted", interFile, "-purpose", "sslclient", leafFile)
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, b)
	}
	text, err := exec.Command(openssl, "x509", "-in", leafFile, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(text), "URI:"+id) || !strings.Contains(string(text), "TLS Web Client Authentication") {
		t.Fatalf("leaf lacks the SPIFFE ID or clientAuth:\n%s", text)
	}
	if got, err := identity.FromCertificate(chain[0]); err != nil || got.String() != id {
		t.Fatalf("identity %v %v", got, err)
	}
	serial := chain[0].SerialNumber.Text(16)

	// Listed, then revoked, then listed as revoked.
	var list []wire.Certificate
	if err := json.Unmarshal([]byte(mustCLI(t, "cert", "list", "--dir", dir, "--json")), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range list {
		found = found || (c.Serial == serial && c.Status == "valid" && c.Identity == id)
	}
	if !found {
		t.Fatalf("%s not listed as valid: %+v", serial, list)
	}
	if got := mustCLI(t, "cert", "revoke", "--dir", dir, "--serial", serial, "--reason", "keyCompromise"); got != "revoked "+serial+" (keyCompromise)\n" {
		t.Fatalf("revoke printed %q", got)
	}
	show := mustCLI(t, "cert", "show", "--dir", dir, serial)
	if !strings.Contains(show, "status:       revoked") || !strings.Contains(show, "(keyCompromise)") {
		t.Fatalf("show after revoke:\n%s", show)
	}
	table := mustCLI(t, "cert", "list", "--dir", dir, "--status", "revoked")
	if !strings.Contains(table, serial) || !strings.Contains(table, "revoked") {
		t.Fatalf("list --status revoked:\n%s", table)
	}

	// The audit chain verifies, then an edited row is named.
	if got := mustCLI(t, "audit", "verify", "--dir", dir); !strings.HasPrefix(got, "OK: ") {
		t.Fatalf("audit verify: %q", got)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM audit WHERE action = 'cert.revoke' AND subject = ?`, serial).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit SET actor = 'spiffe://example.org/admin/mallory' WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cli(t, "audit", "verify", "--dir", dir)
	want := fmt.Sprintf("audit: record %d: hash mismatch: contents changed after it was written", seq)
	if code != 1 || !strings.Contains(stdout, "FAIL: "+want) || !strings.Contains(stderr, want) {
		t.Fatalf("tampered audit verify: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestServerRefusesBadSetup(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org")

	t.Setenv("CERTGATE_PASSPHRASE", "wrong passphrase")
	_, stderr, code := cli(t, "server", "--dir", dir, "--listen", "127.0.0.1:0")
	if want := "certgate: cadir: " + filepath.Join(dir, "ca/intermediate.key") + ": wrong passphrase\n"; code != 1 || stderr != want {
		t.Fatalf("wrong passphrase: exit %d %q\nwant %q", code, stderr, want)
	}

	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	cfgPath := filepath.Join(dir, "certgate.yaml")
	data, _ := os.ReadFile(cfgPath)
	bad := strings.Replace(string(data), "  client_lifetime:", "  client_lifetme:", 1)
	os.WriteFile(cfgPath, []byte(bad), 0o600)
	line := 1 + strings.Count(bad[:strings.Index(bad, "client_lifetme")], "\n")
	_, stderr, code = cli(t, "server", "--dir", dir, "--listen", "127.0.0.1:0")
	want := fmt.Sprintf("certgate: config %s: line %d: profiles.client_lifetme: unknown field; did you mean client_lifetime?\n", cfgPath, line)
	if code != 1 || stderr != want {
		t.Fatalf("misspelled field: exit %d %q\nwant %q", code, stderr, want)
	}
}

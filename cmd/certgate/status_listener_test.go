package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
)

// TestStatusListenerOverPlainHTTP: "certgate init --status-listen" makes
// the server serve the CRL and OCSP over plain HTTP, and certificates name
// those http:// URLs; the real curl and openssl fetch and verify both, and
// the API is not reachable on that listener.
func TestStatusListenerOverPlainHTTP(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
	curl := testenv.RequirePeer(t, "curl")
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	addr, statusAddr := freeAddr(t), freeAddr(t)
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", addr, "--status-listen", statusAddr)
	cfg, err := config.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + statusAddr
	if cfg.Listen.StatusListen != statusAddr || cfg.Listen.StatusURL != base {
		t.Fatalf("config: status_listen %q status_url %q, want %q %q", cfg.Listen.StatusListen, cfg.Listen.StatusURL, statusAddr, base)
	}

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
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/billing", "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), "client")
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	chainPEM, err := os.ReadFile(filepath.Join(out, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pemutil.ParseCertificates(chainPEM)
	if err != nil || len(chain) != 2 {
		t.Fatalf("cert.pem: %d certificates, %v", len(chain), err)
	}
	leaf := chain[0]
	if got, want := leaf.CRLDistributionPoints, base+"/crl/"+ca.KeyID(chain[1]); len(got) != 1 || got[0] != want {
		t.Errorf("CRL distribution points %v, want [%s]", got, want)
	}
	if got := leaf.OCSPServer; len(got) != 1 || got[0] != base+"/ocsp" {
		t.Errorf("OCSP servers %v, want [%s/ocsp]", got, base)
	}

	tmp := t.TempDir()
	write := func(name string, certs ...*x509.Certificate) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, pemutil.EncodeCertificates(certs...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pemutil.ParseCertificates(rootPEM)
	if err != nil || len(roots) != 1 {
		t.Fatalf("bundle.pem: %d certificates, %v", len(roots), err)
	}
	leafFile, interFile := write("leaf.pem", leaf), write("inter.pem", chain[1])
	both := write("both.pem", roots[0], chain[1])

	// The CRL over plain HTTP with curl, verified by openssl.
	crlFile := filepath.Join(tmp, "crl.der")
	if b, err := exec.Command(curl, "-sS", "--fail", "-o", crlFile, leaf.CRLDistributionPoints[0]).CombinedOutput(); err != nil {
		t.Fatalf("curl %s: %v\n%s", leaf.CRLDistributionPoints[0], err, b)
	}
	if b, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crlFile, "-CAfile", both, "-verify", "-noout").CombinedOutput(); err != nil || !strings.Contains(string(b), "verify OK") {
		t.Fatalf("openssl crl -verify: %v\n%s", err, b)
	}

	// OCSP over plain HTTP with openssl: good, and the response verifies.
	b, err := exec.Command(openssl, "ocsp", "-issuer", interFile, "-cert", leafFile, "-url", leaf.OCSPServer[0], "-CAfile", both).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "Response verify OK") || !strings.Contains(string(b), leafFile+": good") {
		t.Fatalf("openssl ocsp: %v\n%s", err, b)
	}

	// The API is never served without TLS.
	for _, path := range []string{"/v1/certificates", "/v1/bundle", "/healthz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the status listener: %d, want 404", path, resp.StatusCode)
		}
	}

	// Both listeners stop with the server.
	stop()
	if _, err := http.Get(base + "/crl"); err == nil {
		t.Errorf("the status listener still answers after the server stopped")
	}
}

func TestInitRefusesBadStatusListen(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	_, stderr, code := cli(t, "init", "--dir", dir, "--trust-domain", "example.org", "--status-listen", "127.0.0.1")
	want := "certgate: cadir: server.status_listen: address 127.0.0.1: missing port in address\n"
	if code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q\nwant %q", code, stderr, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("refused init left %s behind", dir)
	}
}

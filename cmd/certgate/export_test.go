package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/testenv"
)

// TestP12WithCurlThroughGateway: a client enrolled with --format p12 and a
// p12 made by `cert export --legacy` both call a real gateway with curl
// --cert-type P12; the one file is all curl needs.
func TestP12WithCurlThroughGateway(t *testing.T) {
	testenv.RequirePeer(t, "curl")
	testenv.RequirePeer(t, "openssl")
	g := newGatewaySetup(t)
	base := "https://127.0.0.1:" + g.addr[strings.LastIndexByte(g.addr, ':')+1:]
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("p12-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Enroll straight into a p12.
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", g.dir, "--identity", "spiffe://example.org/svc/billing", "--ttl", "10m"))
	enrolled := filepath.Join(t.TempDir(), "billing")
	mustCLI(t, "enroll", "--token", tok, "--out", enrolled, "--format", "p12", "--password-file", pw)
	// And export one from the directory, legacy encryption.
	legacy := filepath.Join(t.TempDir(), "legacy.p12")
	mustCLI(t, "cert", "export", "--creds", enrolled, "--p12", "--legacy", "--password-file", pw, "--out", legacy)

	for _, p12 := range []string{filepath.Join(enrolled, "credentials.p12"), legacy} {
		out, code := g.curl(t, "", "--cert-type", "P12", "--cert", p12+":p12-secret", base+"/v1/pay")
		if code != 0 || !strings.HasPrefix(out, "hello spiffe://example.org/svc/billing via HTTP/") || !strings.HasSuffix(out, "\n\n200 2") && !strings.HasSuffix(out, "\n\n200 1.1") {
			t.Fatalf("curl --cert-type P12 %s: exit %d %q", filepath.Base(p12), code, out)
		}
		// A wrong password: curl cannot load the file and sends nothing.
		out, code = g.curl(t, "", "--cert-type", "P12", "--cert", p12+":wrong", base+"/v1/pay")
		if code != 58 {
			t.Fatalf("wrong password: exit %d %q (want 58, problem with the local certificate)", code, out)
		}
	}
	g.waitAccess(t, "spiffe://example.org/svc/billing", "/v1/pay")
}

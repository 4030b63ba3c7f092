package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
)

// TestAdminCLIChoosesReplica: the admin commands talk to the replica
// --server names (not only the one in the config), and what one replica
// writes is what another one lists: one store behind both.
func TestAdminCLIChoosesReplica(t *testing.T) {
	h := newHASetup(t, storetest.PostgresURL(t))
	h.startReplica(h.home)
	b := h.startReplica("127.0.0.1:0")
	replicaB := h.urls[b]

	// A token minted through replica B enrolls through replica A (the
	// token names the config's server, replica A).
	tok := strings.TrimSpace(testenv.MustCLI(t, h.bin, "token", "create", "--dir", h.dir, "--server", replicaB, "--identity", "spiffe://example.org/svc/cli"))
	out := t.TempDir()
	testenv.MustCLI(t, h.bin, "enroll", "--token", tok, "--out", out)
	chainPEM, err := os.ReadFile(filepath.Join(out, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseLeaf(t, string(chainPEM))
	serial := leaf.SerialNumber.Text(16)

	if got := testenv.MustCLI(t, h.bin, "cert", "revoke", "--dir", h.dir, "--server", replicaB, "--serial", serial); got != "revoked "+serial+" (unspecified)\n" {
		t.Fatalf("revoke through replica B: %q", got)
	}
	// Replica A (the config's server) sees the revocation replica B made.
	if show := testenv.MustCLI(t, h.bin, "cert", "show", "--dir", h.dir, serial); !strings.Contains(show, "status:       revoked") {
		t.Fatalf("replica A after a revoke through B:\n%s", show)
	}
	// --server is really used: a replica that is not there is an error.
	_, stderr, code := testenv.CLI(t, h.bin, "cert", "list", "--dir", h.dir, "--server", "https://127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "cannot reach the certgate server at https://127.0.0.1:1 (from --server)") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("unreachable --server: exit %d %q", code, stderr)
	}
}

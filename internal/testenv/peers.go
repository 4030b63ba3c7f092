package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequirePeer returns the path of a real peer program the test drives
// (curl, openssl, node). Where it is missing the test is skipped with a
// message naming the Debian package, or fails under
// CERTGATE_REQUIRE_PEERS=1 (CI installs every peer, so a missing one there
// is a broken install step, not a reason to skip).
func RequirePeer(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s not found (install it; CERTGATE_REQUIRE_PEERS=1)", name)
	}
	t.Skipf("%s not found: skipping (install the Debian package %q to run this test)", name, name)
	return ""
}

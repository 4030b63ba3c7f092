package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// softHSMModules are where Debian's softhsm2 package puts the module.
var softHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// SoftHSMToken makes a fresh SoftHSM2 token labelled label in a
// configuration of its own under t.TempDir() (SOFTHSM2_CONF is set for the
// test), with its user PIN in a 0600 file, and returns the RFC 7512 URI of
// the token with the module path and the PIN's source. Where softhsm2 is
// missing the test is skipped, or fails under CERTGATE_REQUIRE_PEERS=1.
func SoftHSMToken(t testing.TB, label string) string {
	t.Helper()
	util := RequirePeer(t, "softhsm2-util")
	module := ""
	for _, m := range softHSMModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
			t.Fatal("the SoftHSM2 module libsofthsm2.so is not installed (apt-get install softhsm2)")
		}
		t.Skip("the SoftHSM2 module libsofthsm2.so is not installed: skipping (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	const pin, soPin = "246813", "135792"
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPin).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pkcs11:token=%s?module-path=%s&pin-source=file:%s", label, module, pinFile)
}

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

// TestEnrollKeyStorePKCS11: certgate enroll --key-store pkcs11 makes the
// key inside a SoftHSM2 token; the directory holds key.uri, no key; the
// key cannot be exported; the flags are checked before the token is spent.
func TestEnrollKeyStorePKCS11(t *testing.T) {
	tokenURI := testenv.SoftHSMToken(t, "cli")
	dir := startServer(t)
	id := "spiffe://example.org/svc/hsm"
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", id, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), "hsm")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--key-store", "pkcs11"}, "certgate: --key-store pkcs11: give the token with --pkcs11-uri (or CERTGATE_PKCS11_URI), e.g. pkcs11:token=certgate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin\n"},
		{[]string{"--key-store", "tpm2"}, "certgate: --key-store: \"tpm2\" is not file, pkcs11 or tpm\n"},
		{[]string{"--key-store", "pkcs11", "--pkcs11-uri", tokenURI, "--format", "p12", "--password-file", "/dev/null"}, "certgate: --format p12 and --key-store pkcs11: a key in a token cannot be written into a file\n"},
		{[]string{"--key-store", "pkcs11", "--pkcs11-uri", "pkcs11:token=cli?module-path=/m&pin-value=1"}, "certgate: enroll: devicekey: pin-value would be written into the credentials directory with the URI; use pin-source=file:/path or env:NAME\n"},
	} {
		_, errs, code := cli(t, append([]string{"enroll", "--token", tok, "--out", out}, c.args...)...)
		if code == 0 || errs != c.want {
			t.Fatalf("%v: exit %d %q, want %q", c.args, code, errs, c.want)
		}
	}
	got := mustCLI(t, "enroll", "--token", tok, "--out", out, "--key-store", "pkcs11", "--pkcs11-uri", tokenURI)
	if !strings.Contains(got, "key.uri (the key stays in the token)") {
		t.Fatalf("enroll said %q", got)
	}
	if _, err := os.Stat(filepath.Join(out, "key.pem")); !os.IsNotExist(err) {
		t.Fatalf("key.pem beside a key in a token: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "key.uri"))
	if err != nil || !strings.HasPrefix(string(b), "pkcs11:token=cli;object=certgate%20spiffe://example.org/svc/hsm;id=") {
		t.Fatalf("key.uri: %q %v", b, err)
	}
	_, errs, code := cli(t, "cert", "export", "--creds", out, "--out", filepath.Join(t.TempDir(), "x.pem"))
	if code == 0 || errs != "certgate: credexport: the private key is held in a hardware key store and never leaves it: it cannot be exported\n" {
		t.Fatalf("export of a key in a token: exit %d %q", code, errs)
	}
}

// TestEnrollKeyStoreTPM: certgate enroll --key-store tpm makes the key
// inside a TPM (swtpm); the directory holds key.uri, no key; the key
// cannot be exported; the flags and an absent TPM are refused before the
// token is spent.
func TestEnrollKeyStoreTPM(t *testing.T) {
	store := testenv.SWTPM(t)
	sim := strings.TrimPrefix(store, "tpm:simulator=")
	dir := startServer(t)
	id := "spiffe://example.org/svc/tpm"
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", id, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), "tpm")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tpm", sim}, "certgate: --tpm goes with --key-store tpm\n"},
		{[]string{"--key-store", "tpm", "--tpm", "tpmrm0"}, "certgate: --tpm: \"tpmrm0\" is neither a device path nor a simulator's HOST:PORT\n"},
		{[]string{"--key-store", "tpm", "--tpm", sim, "--format", "p12", "--password-file", "/dev/null"}, "certgate: --format p12 and --key-store tpm: a key in a TPM cannot be written into a file\n"},
		{[]string{"--key-store", "tpm", "--tpm", "/dev/certgate-no-tpm"}, "certgate: enroll: devicekey: TPM device=/dev/certgate-no-tpm: stat /dev/certgate-no-tpm: no such file or directory\n"},
		{[]string{"--key-store", "tpm", "--key-type", "ed25519", "--tpm", sim}, "certgate: enroll: devicekey: key type ed25519 cannot be made in a TPM (use ecdsa-p256)\n"},
	} {
		_, errs, code := cli(t, append([]string{"enroll", "--token", tok, "--out", out}, c.args...)...)
		if code == 0 || errs != c.want {
			t.Fatalf("%v: exit %d %q, want %q", c.args, code, errs, c.want)
		}
	}
	got := mustCLI(t, "enroll", "--token", tok, "--out", out, "--key-store", "tpm", "--tpm", sim)
	if !strings.Contains(got, "key.uri (the key stays in the TPM)") {
		t.Fatalf("enroll said %q", got)
	}
	if _, err := os.Stat(filepath.Join(out, "key.pem")); !os.IsNotExist(err) {
		t.Fatalf("key.pem beside a key in a TPM: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "key.uri"))
	if err != nil || !strings.HasPrefix(string(b), store+";public=") {
		t.Fatalf("key.uri: %q %v", b, err)
	}
	_, errs, code := cli(t, "cert", "export", "--creds", out, "--out", filepath.Join(t.TempDir(), "x.pem"))
	if code == 0 || errs != "certgate: credexport: the private key is held in a hardware key store and never leaves it: it cannot be exported\n" {
		t.Fatalf("export of a key in a TPM: exit %d %q", code, errs)
	}
}

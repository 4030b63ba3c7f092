package deploy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testenv"
)

// repoRoot is the module's root, where scripts/ and deploy/ are.
const repoRoot = "../../.."

// TestSystemdUnits: the units in deploy/systemd pass systemd-analyze
// verify (with ExecStart pointing at a certgate built from this tree: the
// verifier checks that the binary exists), and each has the hardening an
// operator expects.
func TestSystemdUnits(t *testing.T) {
	analyze := testenv.RequirePeer(t, "systemd-analyze")
	bin := testenv.Certgate(t)
	dir := t.TempDir()
	units, err := filepath.Glob(filepath.Join(repoRoot, "deploy/systemd/*.service"))
	if err != nil || len(units) != 3 {
		t.Fatalf("deploy/systemd has %d units (%v), want server, gateway and agent", len(units), err)
	}
	var verify []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		name := filepath.Base(u)
		for _, want := range []string{"ProtectSystem=strict\n", "ReadWritePaths=", "NoNewPrivileges=yes\n", "ExecReload=/bin/kill -HUP $MAINPID\n",
			"ExecStart=/usr/local/bin/certgate ", "PrivateTmp=yes\n", "SystemCallFilter=@system-service\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if !strings.Contains(text, "DynamicUser=yes\n") && !strings.Contains(text, "User=") {
			t.Errorf("%s runs as root: no DynamicUser=yes and no User=", name)
		}
		if strings.Contains(name, "server") && !strings.Contains(text, "LoadCredential=passphrase:") {
			t.Errorf("%s does not take the CA passphrase as a credential", name)
		}
		text = strings.ReplaceAll(text, "/usr/local/bin/certgate", bin)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "@.service") {
			name = strings.TrimSuffix(name, "@.service") + "@billing.service" // an instance of the template
		}
		verify = append(verify, "./"+name)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, verify...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	// systemd-analyze exits 0 on a directive it cannot parse, and says so:
	// any output is a failure.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", strings.Join(verify, " "), err, out)
	}
}

// TestReleaseScript: scripts/release.sh cross-builds a target, the
// checksum file verifies with sha256sum -c, and the binary is static and
// says its version. One target, for time; the script builds all six by
// default.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds certgate; skipped with -short")
	}
	sha256sum := testenv.RequirePeer(t, "sha256sum")
	out := t.TempDir()
	target := "linux/" + runtime.GOARCH
	cmd := exec.Command("bash", "scripts/release.sh")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "OUT="+out, "VERSION=v0.0.0-test", "TARGETS="+target)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	name := "certgate_v0.0.0-test_linux_" + runtime.GOARCH
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(sums)), "\n"); len(lines) != 1 || !strings.HasSuffix(lines[0], "  "+name) {
		t.Fatalf("SHA256SUMS = %q, want one line for %s", sums, name)
	}
	check := exec.Command(sha256sum, "-c", "SHA256SUMS")
	check.Dir = out
	if b, err := check.CombinedOutput(); err != nil || string(b) != name+": OK\n" {
		t.Fatalf("sha256sum -c SHA256SUMS: %v\n%s", err, b)
	}
	version := testenv.MustCLI(t, filepath.Join(out, name), "version")
	if !strings.Contains(version, "(static, CGO_ENABLED=0)") {
		t.Fatalf("release binary is not the static build:\n%s", version)
	}
	// A checksum file that no longer matches is caught.
	if err := os.WriteFile(filepath.Join(out, name), []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	recheck := exec.Command(sha256sum, "-c", "SHA256SUMS")
	recheck.Dir = out
	if b, err := recheck.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum -c accepted a tampered binary:\n%s", b)
	}
}

// TestContainerImage builds the FROM scratch image with
// scripts/build-image.sh (buildah or podman; nothing is pulled), runs the
// quickstart in it with the host's network and a host directory as /data,
// and gets a 200 through its gateway with the allowed demo client's
// certificate. It runs the image with podman, or with buildah's chroot
// isolation where podman's runtime cannot start a container here (a
// sandbox that forbids setting rlimits); it skips, saying why, when
// neither can.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image; skipped with -short")
	}
	buildah, _ := exec.LookPath("buildah")
	podman, _ := exec.LookPath("podman")
	if buildah == "" && podman == "" {
		t.Skip("no container tool: apt-get install buildah (or podman) to build and run the image")
	}
	image := fmt.Sprintf("localhost/certgate-test:%d", os.Getpid())
	build := exec.Command("bash", "scripts/build-image.sh")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "IMAGE="+image)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, b)
	}
	t.Cleanup(func() {
		for _, tool := range []string{buildah, podman} {
			if tool != "" {
				exec.Command(tool, "rmi", "-f", image).Run()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	data := t.TempDir()
	if err := os.Chmod(data, 0o777); err != nil { // the image runs as 65532
		t.Fatal(err)
	}
	gwAddr, srvAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := []string{"quickstart", "--dir", "/data/quickstart", "--listen", gwAddr, "--server-listen", srvAddr, "--json"}
	var why []string
	var qs *exec.Cmd
	var stdout, stderr testenv.SyncBuffer
	start := func(name string, argv ...string) bool {
		stdout, stderr = testenv.SyncBuffer{}, testenv.SyncBuffer{}
		qs = exec.Command(argv[0], argv[1:]...)
		qs.Stdout, qs.Stderr = &stdout, &stderr
		// Its own process group: buildah run leaves buildah-chroot-exec
		// and the certgate in the image behind when only it is killed
		// (they kept serving after the test, found on the CI machine).
		qs.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := qs.Start(); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", name, err))
			return false
		}
		done := make(chan struct{})
		go func() { qs.Wait(); close(done) }()
		stop := func() {
			syscall.Kill(-qs.Process.Pid, syscall.SIGKILL)
			<-done
			// Whatever left the group (a runtime may start its own) is
			// found by the listen address only this run uses.
			exec.Command("pkill", "-KILL", "-f", "--", "--server-listen "+srvAddr).Run()
		}
		for {
			if strings.Contains(stdout.String(), `"ready_ms":`) {
				t.Cleanup(stop)
				t.Logf("the image runs with %s", name)
				return true
			}
			select {
			case <-done:
				stop()
				why = append(why, fmt.Sprintf("%s: %s: %s", name, qs.ProcessState, strings.TrimSpace(stderr.String())))
				return false
			case <-ctx.Done():
				stop()
				t.Fatalf("%s: the quickstart in the image never became ready:\n%s", name, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	ok := false
	if podman != "" {
		ok = start("podman run", append([]string{podman, "run", "--rm", "--network", "host", "-v", data + ":/data", image}, args...)...)
	}
	if !ok && buildah != "" {
		ctr, err := exec.Command(buildah, "from", "--quiet", image).Output()
		if err != nil {
			why = append(why, fmt.Sprintf("buildah from: %v", err))
		} else {
			name := strings.TrimSpace(string(ctr))
			t.Cleanup(func() { exec.Command(buildah, "rm", name).Run() })
			ok = start("buildah run --isolation chroot", append([]string{buildah, "run", "--isolation", "chroot", "-v", data + ":/data", name, "--", "/usr/local/bin/certgate"}, args...)...)
		}
	}
	if !ok {
		t.Skipf("the image was built, but no container runtime could start it here:\n%s", strings.Join(why, "\n"))
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	var info struct {
		GatewayURL string `json:"gateway_url"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil || info.GatewayURL != "https://"+gwAddr {
		t.Fatalf("quickstart --json in the image: %v %q", err, line)
	}
	qsDir := filepath.Join(data, "quickstart")
	roots := x509.NewCertPool()
	if pem, err := os.ReadFile(filepath.Join(qsDir, "bundle.pem")); err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("the image's bundle: %v", err)
	}
	client := testenv.MTLSClient(t, filepath.Join(qsDir, "clients", "allowed"), roots)
	resp, err := client.Get(info.GatewayURL + "/hello")
	if err != nil {
		t.Fatalf("GET through the image's gateway: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET through the image's gateway: %s", resp.Status)
	}
}

package certgatetls_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A client written in another language calls through the real gateway with
// the files `certgate enroll` wrote (key.pem, cert.pem, bundle.pem) and
// nothing else: no certgate code on its side.
//
// Python: the first of /usr/bin/python3 (Debian's, where CI installs
// python3-requests) and python3 on PATH that has requests; failing that,
// any python3, with the standard library's urllib + ssl. Node: its https
// module. A missing peer is logged and left out, or, under
// CERTGATE_REQUIRE_PEERS=1 (CI, which installs them), fails the test.
func TestCrossLanguageClients(t *testing.T) {
	require := os.Getenv("CERTGATE_REQUIRE_PEERS") == "1"
	missing := func(what string) {
		if require {
			t.Fatalf("%s, and CERTGATE_REQUIRE_PEERS=1", what)
		}
		t.Log(what + ": leaving it out")
	}
	clients := map[string][]string{}
	if python, requests := findPython(); python == "" {
		missing("no python3")
	} else {
		if !requests {
			missing("no python3 with requests (Debian package python3-requests)")
		}
		clients["python"] = []string{python, filepath.Join("testdata", "client.py")}
	}
	if node, err := exec.LookPath("node"); err == nil {
		clients["node"] = []string{node, filepath.Join("testdata", "client.js")}
	} else {
		missing("no node")
	}
	if len(clients) == 0 {
		t.Skip("neither python3 nor node is installed")
	}

	d := newDemo(t)
	gw, err := d.startGateway("spiffe://example.org/svc/billing")
	if err != nil {
		t.Fatal(err)
	}
	billing, err := d.enrollDir("billing", "/svc/billing")
	if err != nil {
		t.Fatal(err)
	}
	reports, err := d.enrollDir("reports", "/svc/reports")
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(billing, "bundle.pem")

	for lang, argv := range clients {
		t.Run(lang, func(t *testing.T) {
			r := runClient(t, argv, gw+"/v1/invoices?lang="+lang, billing, bundle)
			if r.Status != 200 {
				t.Fatalf("allowed client: %+v", r)
			}
			var echo struct{ Identity, Path string }
			if err := json.Unmarshal([]byte(r.Body), &echo); err != nil || echo.Identity != "spiffe://example.org/svc/billing" || echo.Path != "/v1/invoices" {
				t.Fatalf("upstream echoed %q (%v)", r.Body, err)
			}
			t.Logf("%s (%s): 200, upstream saw %s", lang, r.Lib, echo.Identity)

			// Another certgate identity: the handshake passes, the route
			// policy answers 403.
			if r := runClient(t, argv, gw+"/v1/invoices", reports, bundle); r.Status != 403 {
				t.Errorf("identity not on the route: %+v, want 403", r)
			}
			// No certificate: the gateway completes the handshake and
			// answers 401 with the reason, which the client shows.
			if r := runClient(t, argv, gw+"/v1/invoices", "", bundle); r.Status != 401 || !strings.Contains(r.Body, `"code":"no_certificate"`) {
				t.Errorf("no certificate: %+v, want 401 no_certificate", r)
			} else {
				t.Logf("%s without a certificate: %d %s", lang, r.Status, r.Body)
			}
		})
	}

	// Revoke the allowed client: once the gateway has pulled the new set
	// (every 50 ms here), each language's next connection is answered 403
	// with the reason.
	leaf, err := readLeaf(filepath.Join(billing, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.revoke(leaf.SerialNumber.Text(16)); err != nil {
		t.Fatal(err)
	}
	for lang, argv := range clients {
		var r clientResult
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if r = runClient(t, argv, gw+"/v1/invoices", billing, bundle); r.Status == 403 {
				break
			}
		}
		if r.Status != 403 || !strings.Contains(r.Body, `"code":"revoked"`) {
			t.Errorf("%s, revoked: %+v, want 403 revoked", lang, r)
		} else {
			t.Logf("%s after revocation: %d %s", lang, r.Status, r.Body)
		}
	}
}

// findPython returns a python3 with requests if there is one, else any
// python3, else "".
func findPython() (path string, requests bool) {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p, true
		}
	}
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if lp, err := exec.LookPath(p); err == nil {
			return lp, false
		}
	}
	return "", false
}

type clientResult struct {
	Lib    string `json:"lib"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// runClient runs a client script against url with the credentials in dir
// (empty: no certificate) and returns what it printed.
func runClient(t *testing.T, argv []string, url, dir, bundle string) clientResult {
	t.Helper()
	cert, key := "", ""
	if dir != "" {
		cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], url, cert, key, bundle)...)
	// Proxies from the environment would be bypassed for 127.0.0.1 by some
	// clients and not by others; keep them out.
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*", "HTTPS_PROXY=", "https_proxy=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	var r clientResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%s printed %q (%v); stderr: %s", strings.Join(argv, " "), stdout.String(), err, stderr.String())
	}
	return r
}

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
)

// chromeBrowser is one headless Chromium, driven by Debian's chromedriver
// over the W3C WebDriver protocol (plain JSON over HTTP, no client
// library): it navigates, reads the DOM, clicks and takes screenshots
// like a user's browser. It has its own profile and NSS database
// (HOME/.pki/nssdb) that trusts the test CA and, if a client certificate
// was imported, presents it to the server without asking (the
// AutoSelectCertificateForUrls policy, see autoSelectPolicy).
//
// One browser process serves every page of a test: starting Chromium is
// what takes long under load (first-start profile work), so it is done
// once per browser and not per page as chromium --dump-dom did.
type chromeBrowser struct {
	home    string
	session string // http://127.0.0.1:PORT/session/ID
	hc      *http.Client
	log     string // chromedriver's log, shown when a command fails
}

// Generous budgets: the machine may run a load average of 20 and more on
// two cores. A page that is not there within pageLoadTimeout is a real
// fault (a client certificate prompt, a resource that never finishes).
const (
	browserStartTimeout = 4 * time.Minute
	pageLoadTimeout     = 2 * time.Minute
)

// newBrowser starts chromedriver and a Chromium session whose NSS database
// trusts trust (PEM certificates, the test CA's) and holds clientP12 (if
// not nil, password "test-password").
func newBrowser(t *testing.T, trust []byte, clientP12 []byte) *chromeBrowser {
	t.Helper()
	bin := testenv.RequirePeer(t, "chromium")
	driver := testenv.RequirePeer(t, "chromedriver")
	certutil := testenv.RequirePeer(t, "certutil")
	pk12util := testenv.RequirePeer(t, "pk12util")
	b := &chromeBrowser{home: t.TempDir(), hc: &http.Client{Timeout: browserStartTimeout + time.Minute}}
	db := filepath.Join(b.home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(certutil, "-N", "-d", "sql:"+db, "--empty-password")
	certs, err := pemutil.ParseCertificates(trust)
	if err != nil || len(certs) == 0 {
		t.Fatalf("trust: %v", err)
	}
	for i, c := range certs {
		f := filepath.Join(b.home, fmt.Sprintf("ca%d.pem", i))
		if err := os.WriteFile(f, pemutil.EncodeCertificates(c), 0o644); err != nil {
			t.Fatal(err)
		}
		run(certutil, "-A", "-d", "sql:"+db, "-n", fmt.Sprintf("certgate test CA %d", i), "-t", "C,,", "-a", "-i", f)
	}
	if clientP12 != nil {
		p12 := filepath.Join(b.home, "client.p12")
		if err := os.WriteFile(p12, clientP12, 0o600); err != nil {
			t.Fatal(err)
		}
		run(pk12util, "-i", p12, "-d", "sql:"+db, "-W", "test-password")
	}

	b.log = filepath.Join(b.home, "chromedriver.log")
	port := b.startDriver(t, driver)

	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--window-size=1280,900",
		"--user-data-dir=" + filepath.Join(b.home, "profile")}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":      "chrome",
		"pageLoadStrategy": "normal",
		"timeouts":         map[string]any{"pageLoad": pageLoadTimeout.Milliseconds(), "script": 30000, "implicit": 0},
		"goog:chromeOptions": map[string]any{
			"binary": bin, "args": args,
			"browserStartupTimeout": browserStartTimeout.Milliseconds(),
		},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	b.session = "http://127.0.0.1:" + port + "/session"
	if err := b.do("POST", "", caps, &created); err != nil {
		b.session = ""
		t.Fatalf("new WebDriver session: %v\n%s", err, b.driverLog())
	}
	b.session += "/" + created.SessionID
	return b
}

// startDriver starts chromedriver on a free port of 127.0.0.1 and waits
// until it says it is ready (GET /status). A port taken between choosing
// and binding makes chromedriver exit: it is started again on another.
func (b *chromeBrowser) startDriver(t *testing.T, driver string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		out := &testenv.SyncBuffer{}
		cmd := exec.Command(driver, "--port="+port, "--log-path="+b.log, "--append-log")
		cmd.Env = append(os.Environ(), "HOME="+b.home) // Chromium finds the NSS database by HOME
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("chromedriver: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			if b.session != "" {
				b.do("DELETE", "", nil, nil)
				b.session = ""
			}
			cmd.Process.Kill()
			<-exited
		})
		status := &http.Client{Timeout: 10 * time.Second}
		deadline := time.Now().Add(browserStartTimeout)
		for {
			resp, err := status.Get("http://127.0.0.1:" + port + "/status")
			if err == nil {
				var st struct {
					Value struct {
						Ready bool `json:"ready"`
					} `json:"value"`
				}
				json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if st.Value.Ready {
					return port
				}
			}
			select {
			case err := <-exited:
				if attempt == 3 {
					t.Fatalf("chromedriver on port %s exited: %v\n%s\n%s", port, err, out.String(), b.driverLog())
				}
				t.Logf("chromedriver on port %s exited (%v), starting it again on another port", port, err)
				exited <- err // for the cleanup
			case <-time.After(100 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("chromedriver on port %s not ready within %v\n%s\n%s", port, browserStartTimeout, out.String(), b.driverLog())
				}
				continue
			}
			break
		}
	}
}

// webDriverError is the error object of the W3C protocol.
type webDriverError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// do sends one WebDriver command; out receives the "value" member.
func (b *chromeBrowser) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.session+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("webdriver %s %s: %s: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		var we webDriverError
		json.Unmarshal(env.Value, &we)
		return fmt.Errorf("webdriver %s %s: %s: %s: %s", method, path, resp.Status, we.Error, firstLine(we.Message))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// driverLog is the end of chromedriver's log, for a failure message.
func (b *chromeBrowser) driverLog() string {
	raw, _ := os.ReadFile(b.log)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// open navigates to url and returns the DOM as Chromium built it.
func (b *chromeBrowser) open(t *testing.T, url string) string {
	t.Helper()
	if err := b.do("POST", "/url", map[string]string{"url": url}, nil); err != nil {
		t.Fatalf("open %s: %v (a page that never loads is most often a client certificate prompt: the AutoSelectCertificateForUrls policy did not match)\n%s", url, err, b.driverLog())
	}
	return b.dom(t)
}

// dumpDOM loads url the way an operator checks a page from a shell:
// chromium --headless --dump-dom in a process of its own, with this
// browser's NSS database (its HOME: trust and client certificate) and a
// fresh profile. It prints the DOM once the page has loaded.
func (b *chromeBrowser) dumpDOM(t *testing.T, url string) string {
	t.Helper()
	bin := testenv.RequirePeer(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), browserStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+b.home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (a page that never loads is most often a client certificate prompt)\n%s", url, err, stderr.String())
	}
	return string(out)
}

// dom returns the current page's DOM.
func (b *chromeBrowser) dom(t *testing.T) string {
	t.Helper()
	var src string
	if err := b.do("GET", "/source", nil, &src); err != nil {
		t.Fatalf("page source: %v", err)
	}
	return src
}

// find returns the WebDriver id of the element matching the CSS selector.
func (b *chromeBrowser) find(t *testing.T, css string) string {
	t.Helper()
	var el map[string]string
	if err := b.do("POST", "/element", map[string]string{"using": "css selector", "value": css}, &el); err != nil {
		t.Fatalf("find %s: %v", css, err)
	}
	for _, v := range el { // the one member, "element-6066-11e4-a52e-4f735e6b9d3d"
		return v
	}
	t.Fatalf("find %s: no element id in %v", css, el)
	return ""
}

// click clicks the element matching the CSS selector as a user does
// (chromedriver dispatches real input events and waits for a navigation
// the click starts).
func (b *chromeBrowser) click(t *testing.T, css string) {
	t.Helper()
	if err := b.do("POST", "/element/"+b.find(t, css)+"/click", map[string]any{}, nil); err != nil {
		t.Fatalf("click %s: %v", css, err)
	}
}

// submit clicks the element matching the CSS selector, which submits a
// form, and returns the DOM of the page that answers once it holds want.
// chromedriver's click does not always wait for the navigation a form
// submission starts (under load it may begin after the click returned),
// so the page is read until the answer is there.
func (b *chromeBrowser) submit(t *testing.T, css, want string) string {
	t.Helper()
	b.click(t, css)
	var dom string
	for deadline := time.Now().Add(pageLoadTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if dom = b.dom(t); strings.Contains(dom, want) {
			return dom
		}
	}
	t.Fatalf("after clicking %s: no %q within %v:\n%s", css, want, pageLoadTimeout, dom)
	return ""
}

// typeInto types text into the input matching the CSS selector.
func (b *chromeBrowser) typeInto(t *testing.T, css, text string) {
	t.Helper()
	if err := b.do("POST", "/element/"+b.find(t, css)+"/value", map[string]any{"text": text}, nil); err != nil {
		t.Fatalf("type into %s: %v", css, err)
	}
}

// screenshot saves the page as PNG to file.
func (b *chromeBrowser) screenshot(t *testing.T, file string) {
	t.Helper()
	var b64 string
	if err := b.do("GET", "/screenshot", nil, &b64); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// policyDir is where Debian's Chromium reads managed policies from.
const policyDir = "/etc/chromium/policies/managed"

// policyFile is the one policy file every console test shares. Chromium
// reads every file of policyDir and, for a policy set in more than one, the
// file last in lexical order wins: per-test files named by process ID (as
// before) made a concurrent test process's file, or a stale one from a
// killed run, take AutoSelectCertificateForUrls away from this test's
// server, and headless Chromium then waits forever at a client certificate
// prompt it cannot show. So the pattern is every port of 127.0.0.1, the
// content is the same for every run, the name sorts after the other
// files, and the file is not removed (a concurrent test may be using it).
var policyFile = filepath.Join(policyDir, "zz-certgate-test.json")

// autoSelectPolicy makes Chromium present the imported client certificate
// to any https://127.0.0.1 server without asking.
func autoSelectPolicy(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
			t.Fatal("the Chromium policy needs root to write " + policyDir)
		}
		t.Skip("the Chromium policy needs root to write " + policyDir)
	}
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rule, _ := json.Marshal(map[string]any{"pattern": "https://127.0.0.1:*", "filter": map[string]any{}})
	pol, _ := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	if old, err := os.ReadFile(policyFile); err != nil || !bytes.Equal(old, pol) {
		tmp := fmt.Sprintf("%s.%d.tmp", policyFile, os.Getpid())
		if err := os.WriteFile(tmp, pol, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, policyFile); err != nil {
			t.Fatal(err)
		}
	}
	// The per-process files of earlier versions of this test, and any
	// other file that would override ours.
	ents, err := os.ReadDir(policyDir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(policyDir, n)
		if strings.HasPrefix(n, "certgate-test-") && strings.HasSuffix(n, ".json") {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		if n > filepath.Base(policyFile) && strings.HasSuffix(n, ".json") {
			raw, _ := os.ReadFile(p)
			if bytes.Contains(raw, []byte("AutoSelectCertificateForUrls")) {
				t.Fatalf("%s sets AutoSelectCertificateForUrls after %s and would override it", p, policyFile)
			}
		}
	}
}

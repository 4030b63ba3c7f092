package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/testenv"
)

// chromeBrowser is a headless Chromium with its own profile and NSS
// database (HOME/.pki/nssdb) that trusts the test CA's root and, if a
// client certificate was imported, presents it to the server
// automatically (the AutoSelectCertificateForUrls policy).
type chromeBrowser struct {
	bin, home, profile string
}

func newBrowser(t *testing.T, e *testenv.Env, clientP12 []byte) *chromeBrowser {
	t.Helper()
	b := &chromeBrowser{bin: testenv.RequirePeer(t, "chromium"), home: t.TempDir(), profile: t.TempDir()}
	certutil := testenv.RequirePeer(t, "certutil")
	pk12util := testenv.RequirePeer(t, "pk12util")
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
	rootFile := filepath.Join(b.home, "root.pem")
	os.WriteFile(rootFile, e.BundlePEM, 0o644)
	run(certutil, "-A", "-d", "sql:"+db, "-n", "certgate test root", "-t", "C,,", "-a", "-i", rootFile)
	interFile := filepath.Join(b.home, "intermediate.pem")
	os.WriteFile(interFile, pemutil.EncodeCertificates(e.Intermediate), 0o644)
	run(certutil, "-A", "-d", "sql:"+db, "-n", "certgate test intermediate", "-t", "C,,", "-a", "-i", interFile)
	if clientP12 != nil {
		p12 := filepath.Join(b.home, "client.p12")
		os.WriteFile(p12, clientP12, 0o600)
		run(pk12util, "-i", p12, "-d", "sql:"+db, "-W", "test-password")
	}
	return b
}

// dumpDOM loads url and returns the DOM as Chromium built it; with shot,
// it also saves a screenshot there.
func (b *chromeBrowser) dumpDOM(t *testing.T, url, shot string) string {
	t.Helper()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + b.profile}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, append(args, "--dump-dom", url)...)
	cmd.Env = append(os.Environ(), "HOME="+b.home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	if !strings.Contains(string(out), "<html") {
		t.Logf("chromium stderr:\n%s", stderr.String())
	}
	if shot != "" {
		cmd := exec.CommandContext(ctx, b.bin, append(args, "--window-size=1280,900", "--screenshot="+shot, url)...)
		cmd.Env = append(os.Environ(), "HOME="+b.home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, out)
		}
	}
	return string(out)
}

// autoSelectPolicy makes Chromium present the imported client certificate
// to serverURL without asking: a managed policy file, which Debian's
// Chromium reads from /etc/chromium/policies/managed (root only).
func autoSelectPolicy(t *testing.T, serverURL string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CERTGATE_REQUIRE_PEERS") == "1" {
			t.Fatal("the Chromium policy needs root to write /etc/chromium/policies/managed")
		}
		t.Skip("the Chromium policy needs root to write /etc/chromium/policies/managed")
	}
	dir := "/etc/chromium/policies/managed"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rule, _ := json.Marshal(map[string]any{"pattern": serverURL, "filter": map[string]any{}})
	pol, _ := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	f := filepath.Join(dir, fmt.Sprintf("certgate-test-%d.json", os.Getpid()))
	if err := os.WriteFile(f, pol, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f) })
}

// TestConsoleInChromium: headless Chromium with the admin's p12 imported
// into its NSS database (pk12util) and chosen by the
// AutoSelectCertificateForUrls policy loads /ui/ and lists the enrolled
// identities with their last use (DOM from --dump-dom; a screenshot is kept
// as an artifact), and one identity's page with its certificates, usage by
// route, chart and revoke form. A browser without a certificate, and one
// with a client certificate that is not an admin's, are refused.
func TestConsoleInChromium(t *testing.T) {
	u := newUsageSetup(t, "")
	e := u.env
	alice := e.IssueDirect(t, "/svc/alice", ca.ClientProfile)
	aliceC := client{cert: alice, serial: alice.Leaf.SerialNumber.Text(16), id: "spiffe://example.org/svc/alice"}
	e.IssueDirect(t, "/svc/bob", ca.ClientProfile)
	resp, err := u.httpClient(aliceC).Get("https://" + u.gwAddr + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitSeen(t, e, aliceC.id)

	p12, err := pkcs12.Modern.Encode(e.AdminCert.PrivateKey, e.AdminCert.Leaf, []*x509Cert{e.Intermediate}, "test-password")
	if err != nil {
		t.Fatal(err)
	}
	autoSelectPolicy(t, e.URL)
	admin := newBrowser(t, e, p12)
	shot := filepath.Join(t.ArtifactDir(), "console-identities.png")
	dom := admin.dumpDOM(t, e.URL+"/ui/", shot)
	for _, want := range []string{
		`<span id="viewer">spiffe://example.org/admin/alice</span>`,
		`">spiffe://example.org/svc/alice</a>`,
		`">spiffe://example.org/svc/bob</a>`,
		"from 127.0.0.1",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("/ui/ DOM lacks %q:\n%s", want, dom)
		}
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	dom = admin.dumpDOM(t, e.URL+"/ui/identity?id="+aliceC.id, filepath.Join(t.ArtifactDir(), "console-identity.png"))
	for _, want := range []string{`<svg id="chart"`, `<form class="revoke" method="post" action="/ui/revoke">`, aliceC.serial, "<td>api</td>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("identity page DOM lacks %q:\n%s", want, dom)
		}
	}
	dom = admin.dumpDOM(t, e.URL+"/ui/audit", "")
	if !strings.Contains(dom, `<p id="verification" class="ok">The hash chain of all`) {
		t.Errorf("audit page does not show a verified chain:\n%s", dom)
	}

	dom = admin.dumpDOM(t, e.URL+"/ui/gateways", "")
	if !regexp.MustCompile(`<td>spiffe://example.org/gateway/gw1</td><td>1</td>.*<span class="ok">connected</span>`).MatchString(strings.ReplaceAll(dom, "\n", "")) {
		t.Errorf("gateways page does not show gw1 connected:\n%s", dom)
	}

	nobody := newBrowser(t, e, nil)
	if dom := nobody.dumpDOM(t, e.URL+"/ui/", ""); !strings.Contains(dom, `<p id="message">a client certificate is required</p>`) || strings.Contains(dom, "svc/alice") {
		t.Errorf("a browser without a certificate got:\n%s", dom)
	}
	svcP12, err := pkcs12.Modern.Encode(alice.PrivateKey, alice.Leaf, []*x509Cert{e.Intermediate}, "test-password")
	if err != nil {
		t.Fatal(err)
	}
	notAdmin := newBrowser(t, e, svcP12)
	if dom := notAdmin.dumpDOM(t, e.URL+"/ui/", ""); !strings.Contains(dom, `<p id="message">identity spiffe://example.org/svc/alice may not use the console: it holds no role; that needs the role admin</p>`) {
		t.Errorf("a non-admin browser got:\n%s", dom)
	}
}

func waitSeen(t *testing.T, e *testenv.Env, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		seen, _ := e.Store.IdentitiesSeen(context.Background())
		for _, s := range seen {
			if s.Identity == id {
				return
			}
		}
	}
	t.Fatalf("%s never reached the server's usage", id)
}

// consoleSession is a browser session in Go: the admin certificate and
// a cookie jar, for what --dump-dom cannot do (submit a form).
func consoleSession(t *testing.T, e *testenv.Env, cert *tls.Certificate) *http.Client {
	jar, _ := cookiejar.New(nil)
	tc := &tls.Config{RootCAs: e.Roots}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// TestConsoleRevokeCutsLiveConnection: the identity page's revoke form,
// posted with its token and cookie, revokes the certificate, audited with
// the browser's identity, and the client's live gateway connection is cut
// within a second. Forged posts (no cookie, no token, a token of another
// viewer's session, a cross-site fetch, no confirmation, GET) change
// nothing.
func TestConsoleRevokeCutsLiveConnection(t *testing.T) {
	u := newUsageSetup(t, "")
	e := u.env
	victim := e.IssueDirect(t, "/svc/victim", ca.ClientProfile)
	v := client{cert: victim, serial: victim.Leaf.SerialNumber.Text(16), id: "spiffe://example.org/svc/victim"}
	live, br, cut, err := openLive(u.gwAddr, clientTLS(e.Roots, v, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })
	waitRead(br)

	browser := consoleSession(t, e, &e.AdminCert)
	page := func(hc *http.Client) string {
		resp, err := hc.Get(e.URL + "/ui/identity?id=" + v.id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("identity page: %s\n%s", resp.Status, b)
		}
		return string(b)
	}
	m := csrfField.FindStringSubmatch(page(browser))
	if m == nil {
		t.Fatal("no CSRF token in the revoke form")
	}
	token := m[1]
	form := func(tok, confirm string) url.Values {
		return url.Values{"csrf": {tok}, "serial": {v.serial}, "identity": {v.id}, "reason": {"keyCompromise"}, "confirm": {confirm}}
	}
	post := func(hc *http.Client, vals url.Values, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", e.URL+"/ui/revoke", strings.NewReader(vals.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const stale = `<p id="message">the form is stale or did not come from this console; reload the page and try again</p>`
	other := consoleSession(t, e, &e.AdminCert) // another browser of the same admin: its own cookie
	page(other)
	for _, tc := range []struct {
		name   string
		hc     *http.Client
		vals   url.Values
		hdr    map[string]string
		status int
		msg    string
	}{
		{"no cookie", consoleSession(t, e, &e.AdminCert), form(token, "yes"), nil, 403, stale},
		{"no token", browser, form("", "yes"), nil, 403, stale},
		{"other session's cookie", other, form(token, "yes"), nil, 403, stale},
		{"cross-site", browser, form(token, "yes"), map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, stale},
		{"not confirmed", browser, form(token, ""), nil, 400, `<p id="message">tick the box to confirm the revocation</p>`},
	} {
		status, body := post(tc.hc, tc.vals, tc.hdr)
		if status != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d\n%s\nwant %d %s", tc.name, status, body, tc.status, tc.msg)
		}
	}
	if resp, err := browser.Get(e.URL + "/ui/revoke?" + form(token, "yes").Encode()); err != nil || resp.StatusCode == 200 {
		t.Errorf("GET /ui/revoke: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if c, err := e.Store.GetCertificate(context.Background(), v.serial); err != nil || c.Revocation != nil {
		t.Fatalf("after forged posts: %+v %v; want not revoked", c.Revocation, err)
	}
	select {
	case <-cut:
		t.Fatal("the live connection closed before the revocation")
	default:
	}

	status, body := post(browser, form(token, "yes"), nil)
	posted := time.Now()
	if status != 200 || !strings.Contains(body, "Revoked "+v.serial+" (keyCompromise) by spiffe://example.org/admin/alice.") {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	select {
	case <-cut:
		t.Logf("live gateway connection cut %v after the console answered", time.Since(posted).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("the live gateway connection is still open 1 s after the console revoked its certificate")
	}
	// Minting a token from the console: the form's token is needed, the
	// token is shown once and recorded by the browser's identity.
	resp, err := browser.Get(e.URL + "/ui/tokens")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tm := csrfField.FindStringSubmatch(string(b))
	if tm == nil {
		t.Fatalf("no CSRF token in the mint form:\n%s", b)
	}
	mint := func(tok string) (int, string) {
		resp, err := browser.PostForm(e.URL+"/ui/tokens", url.Values{"csrf": {tok}, "identity": {"spiffe://example.org/svc/new"}, "ttl": {"10m"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := mint(token); status != 403 || !strings.Contains(body, stale) { // the revoke form's token
		t.Errorf("mint with another form's token: %d\n%s", status, body)
	}
	status, body = mint(tm[1])
	tokRe := regexp.MustCompile(`<pre id="token">([^<]+)</pre>`)
	if status != 201 || tokRe.FindStringSubmatch(body) == nil {
		t.Fatalf("mint: %d\n%s", status, body)
	}
	recs, err := e.Store.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	minted := false
	for _, r := range recs {
		minted = minted || (r.Action == "token.create" && r.Actor == "spiffe://example.org/admin/alice" && strings.Contains(r.Detail, "spiffe://example.org/svc/new"))
	}
	if !minted {
		t.Error("no token.create audit record by the browser's identity")
	}
	found := false
	for _, r := range recs {
		found = found || (r.Action == "cert.revoke" && r.Subject == v.serial && r.Actor == "spiffe://example.org/admin/alice")
	}
	if !found {
		t.Error("no cert.revoke audit record by the browser's identity")
	}
}

type x509Cert = x509.Certificate

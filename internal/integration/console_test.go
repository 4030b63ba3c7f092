package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/credexport"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/testenv"
)

// consoleTrust is what the console tests' browsers trust: the test CA's
// root and its intermediate. Chromium refuses chains through certgate's
// root (its critical URI name constraint, see
// TestChromiumAndTheRootNameConstraint); with the intermediate trusted as
// an anchor, the path Chromium builds ends there (docs/console.md).
func consoleTrust(e *testenv.Env) []byte {
	return append(append([]byte{}, e.BundlePEM...), pemutil.EncodeCertificates(e.Intermediate)...)
}

// p12Of is cert with the test CA's intermediate as the PKCS#12 file
// certgate cert export --p12 writes (credexport, the command's encoder;
// legacy is its --legacy), password "test-password", for pk12util to
// import into a browser's NSS database.
func p12Of(t *testing.T, e *testenv.Env, cert tls.Certificate, legacy bool) []byte {
	t.Helper()
	chain := tls.Certificate{Certificate: [][]byte{cert.Leaf.Raw, e.Intermediate.Raw}, PrivateKey: cert.PrivateKey}
	p12, err := credexport.Encode(chain, credexport.Options{Format: credexport.P12, Password: "test-password", Legacy: legacy})
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

// TestConsoleInChromium: headless Chromium with the admin's p12 imported
// into its NSS database (pk12util) and chosen by the
// AutoSelectCertificateForUrls policy loads /ui/ and lists the enrolled
// identities with their last use (the DOM read over WebDriver and, for
// /ui/, printed by chromium --dump-dom; a screenshot is kept as an
// artifact), and one identity's page with its certificates, usage by
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

	autoSelectPolicy(t)
	admin := newBrowser(t, consoleTrust(e), p12Of(t, e, e.AdminCert, false))
	shot := filepath.Join(t.ArtifactDir(), "console-identities.png")
	dom := admin.open(t, e.URL+"/ui/")
	admin.screenshot(t, shot)
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
	t.Logf("screenshot: %s", shot)
	// The same page as chromium --dump-dom prints it, in a browser process
	// of its own with the same NSS database.
	if dom := admin.dumpDOM(t, e.URL+"/ui/"); !strings.Contains(dom, `">spiffe://example.org/svc/alice</a>`) || !strings.Contains(dom, `<span id="viewer">spiffe://example.org/admin/alice</span>`) {
		t.Errorf("chromium --dump-dom /ui/:\n%s", dom)
	}
	dom = admin.open(t, e.URL+"/ui/identity?id="+aliceC.id)
	admin.screenshot(t, filepath.Join(t.ArtifactDir(), "console-identity.png"))
	for _, want := range []string{`<svg id="chart"`, `<form class="revoke" method="post" action="/ui/revoke">`, aliceC.serial, "<td>api</td>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("identity page DOM lacks %q:\n%s", want, dom)
		}
	}
	dom = admin.open(t, e.URL+"/ui/audit")
	if !strings.Contains(dom, `<p id="verification" class="ok">The hash chain of all`) {
		t.Errorf("audit page does not show a verified chain:\n%s", dom)
	}

	dom = admin.open(t, e.URL+"/ui/gateways")
	if !regexp.MustCompile(`<td>spiffe://example.org/gateway/gw1</td><td>1</td>.*<span class="ok">connected</span>`).MatchString(strings.ReplaceAll(dom, "\n", "")) {
		t.Errorf("gateways page does not show gw1 connected:\n%s", dom)
	}

	nobody := newBrowser(t, consoleTrust(e), nil)
	if dom := nobody.open(t, e.URL+"/ui/"); !strings.Contains(dom, `<p id="message">a client certificate is required</p>`) || strings.Contains(dom, "svc/alice") {
		t.Errorf("a browser without a certificate got:\n%s", dom)
	}
	notAdmin := newBrowser(t, consoleTrust(e), p12Of(t, e, alice, false))
	if dom := notAdmin.open(t, e.URL+"/ui/"); !strings.Contains(dom, `<p id="message">identity spiffe://example.org/svc/alice may not use the console: it holds no role; that needs the role admin or auditor</p>`) {
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

// consoleSession is a browser session in Go: a client certificate and a
// cookie jar, for the forged posts a browser does not make (no cookie,
// another session's cookie, a header set by hand).
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

// auditCount is the number of records in the audit log.
func auditCount(t *testing.T, e *testenv.Env) int {
	t.Helper()
	recs, err := e.Store.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// notRevoked fails the test if serial was revoked.
func notRevoked(t *testing.T, e *testenv.Env, serial, after string) {
	t.Helper()
	if c, err := e.Store.GetCertificate(context.Background(), serial); err != nil || c.Revocation != nil {
		t.Fatalf("after %s: %+v %v; want %s not revoked", after, c.Revocation, err, serial)
	}
}

// attackerSite is a page of another site (plain HTTP on another port)
// whose buttons post forms to the console, as a forged cross-site request
// does: #revoke and #mint, with csrf as the form token.
func attackerSite(t *testing.T, e *testenv.Env, csrf, serial, id string) string {
	t.Helper()
	page := fmt.Sprintf(`<!doctype html><html><body><h1>win a prize</h1>
<form method="post" action="%[1]s/ui/revoke"><input type="hidden" name="csrf" value="%[2]s"><input type="hidden" name="serial" value="%[3]s">
<input type="hidden" name="identity" value="%[4]s"><input type="hidden" name="reason" value="keyCompromise"><input type="hidden" name="confirm" value="yes"><button id="revoke">claim</button></form>
<form method="post" action="%[1]s/ui/tokens"><input type="hidden" name="csrf" value="%[2]s"><input type="hidden" name="identity" value="spiffe://example.org/svc/evil"><button id="mint">claim too</button></form>
</body></html>`, e.URL, csrf, serial, id)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestConsoleAuditorInChromium: an identity holding the role auditor
// (granted as data) opens every console page in headless Chromium with
// its certificate (a --legacy PKCS#12 export imported with pk12util), and
// no page has a write form, a form token or a link
// to one; the token page refuses it. Its forged posts to /ui/revoke and
// /ui/tokens are refused with the role answer and change nothing (no
// revocation, no token, no audit record): from another site's page in its
// browser; with the cookie and form token of a page it loaded while it
// still held admin, submitted by clicking that form in the browser after
// admin was taken away; and from a Go client without cookie or token, with
// a valid pair, and marked cross-site.
func TestConsoleAuditorInChromium(t *testing.T) {
	u := newUsageSetup(t, "")
	e := u.env
	ctx := context.Background()
	alice := e.IssueDirect(t, "/svc/alice", ca.ClientProfile)
	const aliceID = "spiffe://example.org/svc/alice"
	aliceSerial := alice.Leaf.SerialNumber.Text(16)
	carol := e.IssueDirect(t, "/audit/carol", ca.ClientProfile)
	const carolID = "spiffe://example.org/audit/carol"
	grant := func(role string) {
		t.Helper()
		if err := e.Store.GrantRole(ctx, roles.Grant{Role: role, Holder: carolID, GrantedBy: e.AdminID.String(), GrantedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ungrant := func(role string) {
		t.Helper()
		if err := e.Store.RevokeRole(ctx, roles.Grant{Role: role, Holder: carolID}, e.AdminID.String(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	grant(roles.Auditor)

	autoSelectPolicy(t)
	aud := newBrowser(t, consoleTrust(e), p12Of(t, e, carol, true))
	viewer := `<span id="viewer">spiffe://example.org/audit/carol</span> <span id="role">(auditor, read only)</span>`
	for _, page := range []string{"/ui/", "/ui/?filter=valid", "/ui/identity?id=" + aliceID, "/ui/audit", "/ui/gateways", "/ui/legacy-keys"} {
		dom := aud.open(t, e.URL+page)
		if !strings.Contains(dom, viewer) {
			t.Errorf("%s: no %q:\n%s", page, viewer, dom)
		}
		for _, bad := range []string{`method="post"`, "/ui/revoke", "/ui/tokens", `name="csrf"`, "Mint a token", `name="confirm"`} {
			if strings.Contains(dom, bad) {
				t.Errorf("%s shows the auditor %q:\n%s", page, bad, dom)
			}
		}
		switch {
		case page == "/ui/" && !strings.Contains(dom, `">spiffe://example.org/svc/alice</a>`):
			t.Errorf("/ui/ does not list alice for the auditor:\n%s", dom)
		case strings.HasPrefix(page, "/ui/identity") && !strings.Contains(dom, "<td>"+aliceSerial+"</td><td>valid</td>"):
			t.Errorf("the identity page does not show alice's certificate to the auditor:\n%s", dom)
		case page == "/ui/audit" && !strings.Contains(dom, `<p id="verification" class="ok">`):
			t.Errorf("the audit page does not show a verified chain to the auditor:\n%s", dom)
		}
		if strings.HasPrefix(page, "/ui/identity") {
			aud.screenshot(t, filepath.Join(t.ArtifactDir(), "console-auditor-identity.png"))
		}
	}
	const noMint = `<p id="message">identity spiffe://example.org/audit/carol may not mint enrollment tokens: it holds only auditor; that needs the role admin</p>`
	const noRevoke = `<p id="message">identity spiffe://example.org/audit/carol may not revoke certificates: it holds only auditor; that needs the role admin</p>`
	if dom := aud.open(t, e.URL+"/ui/tokens"); !strings.Contains(dom, noMint) || strings.Contains(dom, "<form") {
		t.Errorf("/ui/tokens for the auditor:\n%s", dom)
	}

	// Forged from another site's page in the auditor's browser.
	before := auditCount(t, e)
	evil := attackerSite(t, e, strings.Repeat("ab", 32), aliceSerial, aliceID)
	for _, tc := range []struct{ button, want string }{{"#revoke", noRevoke}, {"#mint", noMint}} {
		aud.open(t, evil)
		aud.submit(t, tc.button, tc.want)
	}
	if n := auditCount(t, e); n != before {
		t.Errorf("cross-site posts added %d audit records", n-before)
	}
	notRevoked(t, e, aliceSerial, "the auditor's cross-site posts")

	// A valid cookie and form token, from pages loaded while carol still
	// held admin, submitted by clicking the forms after it was taken away:
	// the role is checked at the post, not only when the form is drawn.
	grant(roles.Admin)
	aud.open(t, e.URL+"/ui/identity?id="+aliceID)
	ungrant(roles.Admin)
	before = auditCount(t, e)
	aud.click(t, `form.revoke input[name="confirm"]`)
	aud.submit(t, `form.revoke button`, noRevoke)
	grant(roles.Admin)
	aud.open(t, e.URL+"/ui/tokens")
	ungrant(roles.Admin)
	mid := auditCount(t, e)
	aud.typeInto(t, `#mint input[name="identity"]`, "spiffe://example.org/svc/new")
	aud.submit(t, `#mint button`, noMint)
	if n := auditCount(t, e); n != mid || mid != before+2 { // +2: admin granted again, and taken away
		t.Errorf("audit records: %d before the revoke, %d before the mint, %d after; want only the two role changes", before, mid, n)
	}
	notRevoked(t, e, aliceSerial, "the auditor's kept forms")

	// The same from a Go client: no cookie, a valid pair, cross-site.
	hc := consoleSession(t, e, &carol)
	grant(roles.Admin)
	tokens := map[string]string{}
	for path, action := range map[string]string{"/ui/identity?id=" + aliceID: "revoke", "/ui/tokens": "mint"} {
		resp, err := hc.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no form token on %s while carol holds admin:\n%s", path, b)
		}
		tokens[action] = m[1]
	}
	ungrant(roles.Admin)
	before = auditCount(t, e)
	post := func(hc *http.Client, path string, vals url.Values, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.URL+path, strings.NewReader(vals.Encode()))
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
	revokeForm := func(tok string) url.Values {
		return url.Values{"csrf": {tok}, "serial": {aliceSerial}, "identity": {aliceID}, "reason": {"keyCompromise"}, "confirm": {"yes"}}
	}
	mintForm := func(tok string) url.Values {
		return url.Values{"csrf": {tok}, "identity": {"spiffe://example.org/svc/new"}}
	}
	cross := map[string]string{"Sec-Fetch-Site": "cross-site"}
	for _, tc := range []struct {
		name, path string
		hc         *http.Client
		vals       url.Values
		hdr        map[string]string
		want       string
	}{
		{"revoke, no cookie, no token", "/ui/revoke", consoleSession(t, e, &carol), revokeForm(""), nil, noRevoke},
		{"revoke, valid cookie and token", "/ui/revoke", hc, revokeForm(tokens["revoke"]), nil, noRevoke},
		{"revoke, valid pair, cross-site", "/ui/revoke", hc, revokeForm(tokens["revoke"]), cross, noRevoke},
		{"mint, no cookie, no token", "/ui/tokens", consoleSession(t, e, &carol), mintForm(""), nil, noMint},
		{"mint, valid cookie and token", "/ui/tokens", hc, mintForm(tokens["mint"]), nil, noMint},
		{"mint, valid pair, cross-site", "/ui/tokens", hc, mintForm(tokens["mint"]), cross, noMint},
	} {
		if status, body := post(tc.hc, tc.path, tc.vals, tc.hdr); status != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d\n%s\nwant 403 %s", tc.name, status, body, tc.want)
		}
	}
	if n := auditCount(t, e); n != before {
		t.Errorf("the auditor's forged posts added %d audit records", n-before)
	}
	notRevoked(t, e, aliceSerial, "the auditor's forged posts")
}

// TestConsoleRevokeInChromium: the admin revokes a certificate from the
// identity page in headless Chromium by clicking, as a user does: the
// reason chosen in the select, the confirmation box ticked, the Revoke
// button pressed. The client's live keep-alive connection to the gateway
// is closed within a second of the revocation (measured from its audit
// record, written before the console answers), and the audit record
// carries the browser's identity. Before that, nothing is revoked by a
// click on Revoke without the box ticked (the browser does not post the
// form), nor by another site's page posting the form with the very token
// of the admin's page (the browser sends no SameSite=Strict cookie with
// it and says Sec-Fetch-Site: cross-site).
func TestConsoleRevokeInChromium(t *testing.T) {
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
	var cutAt time.Time
	cutSeen := make(chan struct{})
	go func() { <-cut; cutAt = time.Now(); close(cutSeen) }()

	autoSelectPolicy(t)
	admin := newBrowser(t, consoleTrust(e), p12Of(t, e, e.AdminCert, false))
	page := e.URL + "/ui/identity?id=" + v.id
	m := csrfField.FindStringSubmatch(admin.open(t, page))
	if m == nil {
		t.Fatal("no form token on the identity page")
	}
	before := auditCount(t, e)
	admin.open(t, attackerSite(t, e, m[1], v.serial, v.id))
	admin.submit(t, "#revoke", `<p id="message">the form is stale or did not come from this console; reload the page and try again</p>`)
	admin.open(t, page)
	admin.click(t, `form.revoke button`) // the box not ticked
	if dom := admin.dom(t); !strings.Contains(dom, `<form class="revoke" method="post" action="/ui/revoke">`) {
		t.Errorf("Revoke without the box ticked left the page:\n%s", dom)
	}
	if n := auditCount(t, e); n != before+1 { // +1: the page view
		t.Errorf("the refused posts added %d audit records, want only the page view", n-before)
	}
	notRevoked(t, e, v.serial, "the cross-site post and the unconfirmed click")
	select {
	case <-cutSeen:
		t.Fatal("the live connection closed before the revocation")
	default:
	}

	admin.click(t, `form.revoke select[name="reason"] option:nth-child(3)`) // cessationOfOperation
	admin.click(t, `form.revoke input[name="confirm"]`)
	admin.submit(t, `form.revoke button`, "Revoked "+v.serial+" (cessationOfOperation) by spiffe://example.org/admin/alice.")
	answered := time.Now() // the answer's page is there
	admin.screenshot(t, filepath.Join(t.ArtifactDir(), "console-revoked.png"))
	recs, err := e.Store.AuditRecords(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var revokedAt time.Time
	for _, r := range recs {
		if r.Action == "cert.revoke" && r.Subject == v.serial {
			if r.Actor != "spiffe://example.org/admin/alice" {
				t.Errorf("cert.revoke by %q, want the browser's identity", r.Actor)
			}
			revokedAt = r.Time
		}
	}
	if revokedAt.IsZero() {
		t.Fatal("no cert.revoke audit record")
	}
	select {
	case <-cutSeen:
	case <-time.After(30 * time.Second):
		t.Fatal("the live gateway connection is still open 30 s after the console revoked its certificate")
	}
	after := cutAt.Sub(revokedAt)
	t.Logf("live gateway connection cut %v after the revocation was recorded (%v after the answer's page was seen)", after.Round(time.Millisecond), cutAt.Sub(answered).Round(time.Millisecond))
	if after < 0 || after > time.Second {
		t.Errorf("the live gateway connection was cut %v after the revocation; want within 1 s", after)
	}
}

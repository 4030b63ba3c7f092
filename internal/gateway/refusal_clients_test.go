package gateway

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
)

// TestRefusalsAsClientsShowThem: for each refusal kind, what curl (HTTP/1.1
// and HTTP/2, with and without -f), openssl s_client, Python requests,
// Node's https and Go's net/http show a person. docs/gateway.md quotes these outputs.
func TestRefusalsAsClientsShowThem(t *testing.T) {
	curl := testenv.RequirePeer(t, "curl")
	openssl := testenv.RequirePeer(t, "openssl")
	py := pythonWith(t, "requests")
	node := testenv.RequirePeer(t, "node")
	e := newEnv(t)
	now := e.clock.Now()
	revoked := e.ca.Issue(t, withSvc("revoked"))
	e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(revoked.Cert)))
	// curl, openssl and Python read the wall clock for the gateway's own
	// certificate; the client certificates are judged by the gateway's
	// clock, which is the same here.
	cases := []struct {
		reason Reason
		leaf   *testca.Leaf
	}{
		{ReasonNoCertificate, nil},
		{ReasonUnknownAuthority, testca.New(t, td).Issue(t, withSvc("a"))},
		{ReasonExpired, e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour)))},
		{ReasonNotYetValid, e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour)))},
		{ReasonWrongUsage, e.ca.Issue(t, withSvc("a"), testca.WithEKU(x509.ExtKeyUsageServerAuth))},
		{ReasonBadIdentity, e.ca.Issue(t, testca.WithID("spiffe://other.org/svc/a"))},
		{ReasonRevoked, revoked},
	}
	bundle := e.dir + "/bundle.pem"
	port := strings.Split(e.addr(), ":")[1]
	url := "https://localhost:" + port + "/v1/pay"
	for i, tc := range cases {
		t.Run(tc.reason.String(), func(t *testing.T) {
			status := refusalStatus(tc.reason)
			code := fmt.Sprintf(`"code":"%s"`, tc.reason)
			var certArgs, sslArgs []string
			pyCert := "None"
			if tc.leaf != nil {
				cert, key := tc.leaf.WriteFiles(t, t.TempDir(), fmt.Sprintf("c%d", i))
				certArgs = []string{"--cert", cert, "--key", key}
				sslArgs = []string{"-cert", cert, "-key", key}
				pyCert = fmt.Sprintf("(%q, %q)", cert, key)
			}
			run := func(name string, stdin string, args ...string) (string, string, int) {
				cmd := exec.Command(name, args...)
				cmd.Stdin = strings.NewReader(stdin)
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				exit := 0
				if ee, ok := err.(*exec.ExitError); ok {
					exit = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				return out.String(), errb.String(), exit
			}
			// curl shows the JSON body and exits 0; with -f it exits 22
			// and says the status.
			for _, proto := range []struct{ flag, version string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
				out, errOut, exit := run(curl, "", append([]string{"-sS", proto.flag, "--cacert", bundle, "-w", "\n%{http_code} %{http_version}", url}, certArgs...)...)
				if exit != 0 || !strings.Contains(out, code) || !strings.HasSuffix(out, fmt.Sprintf("\n%d %s", status, proto.version)) {
					t.Errorf("curl %s: exit %d %q %q", proto.flag, exit, out, errOut)
				}
				_, errOut, exit = run(curl, "", append([]string{"-sSf", proto.flag, "--cacert", bundle, url}, certArgs...)...)
				if want := fmt.Sprintf("curl: (22) The requested URL returned error: %d\n", status); exit != 22 || errOut != want {
					t.Errorf("curl -f %s: exit %d %q, want %q", proto.flag, exit, errOut, want)
				}
			}
			// openssl s_client completes the handshake and prints the
			// HTTP answer.
			out, errOut, _ := run(openssl, "GET /v1/pay HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
				append([]string{"s_client", "-connect", e.addr(), "-servername", "localhost", "-CAfile", bundle, "-quiet", "-ign_eof"}, sslArgs...)...)
			if !strings.Contains(out, fmt.Sprintf("HTTP/1.1 %d ", status)) || !strings.Contains(out, code) {
				t.Errorf("openssl s_client: %q %q", out, errOut)
			}
			// Python requests: the status and the JSON; raise_for_status
			// says the status.
			script := fmt.Sprintf(`import requests
r = requests.get(%q, cert=%s, verify=%q)
print(r.status_code, r.json()["error"]["code"])
try:
    r.raise_for_status()
except requests.HTTPError as e:
    print(e)
`, url, pyCert, bundle)
			out, errOut, exit := run(py, "", "-c", script)
			wantPy := fmt.Sprintf("%d %s\n%d Client Error: %s for url: %s\n", status, tc.reason, status, map[int]string{401: "Unauthorized", 403: "Forbidden"}[status], url)
			if exit != 0 || out != wantPy {
				t.Errorf("python requests: exit %d %q %q, want %q", exit, out, errOut, wantPy)
			}
			// Node's https: the status, its reason phrase and the JSON;
			// no 'error' event.
			nodeScript := `const fs = require('fs'), https = require('https');
const [url, bundle, cert, key] = process.argv.slice(1);
const o = { ca: fs.readFileSync(bundle), agent: false };
if (cert) { o.cert = fs.readFileSync(cert); o.key = fs.readFileSync(key); }
https.get(url, o, (res) => {
  let b = '';
  res.on('data', (c) => { b += c; });
  res.on('end', () => console.log(res.statusCode, res.statusMessage, JSON.parse(b).error.code));
}).on('error', (e) => console.log('error', e.code, e.message));`
			nodeArgs := []string{"-e", nodeScript, url, bundle}
			if tc.leaf != nil {
				nodeArgs = append(nodeArgs, certArgs[1], certArgs[3])
			}
			out, errOut, exit = run(node, "", nodeArgs...)
			wantNode := fmt.Sprintf("%d %s %s\n", status, map[int]string{401: "Unauthorized", 403: "Forbidden"}[status], tc.reason)
			if exit != 0 || out != wantNode {
				t.Errorf("node https: exit %d %q %q, want %q", exit, out, errOut, wantNode)
			}
			// Go's net/http: the status and the body.
			resp, err := e.client(tc.leaf, true).Get(e.url("/v1/pay"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body struct{ Error struct{ Code string } }
			if json.Unmarshal(b, &body); resp.StatusCode != status || body.Error.Code != tc.reason.String() {
				t.Errorf("go: %s %s", resp.Status, b)
			}
		})
	}
	if e.hits.Load() != 0 {
		t.Fatalf("the upstream saw %d requests", e.hits.Load())
	}
}

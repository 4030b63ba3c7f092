package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/testenv"
)

// spoofedHeaders are header names a client might use to pass itself off
// as someone else, in the spellings servers merge: '_' for '-' (CGI and
// WSGI turn both into '_'), any case, and the forwarding headers the
// gateway sets itself.
var spoofedHeaders = []string{
	"X-Client-Identity", "x-client-identity", "X_Client_Identity", "x_client_identity", "X-CLIENT_IDENTITY",
	"Client-Cert", "Client_Cert", "client_cert", "Client-Cert-Chain", "Client_Cert_Chain",
	"X-Forwarded-Client-Cert", "X_Forwarded_Client_Cert", "x_forwarded_client_cert",
	"X-Client-Cert-Serial", "X_Client_Cert_Serial",
	"Forwarded", "X-Real-IP", "X_Real_IP", "x_real_ip",
	"X-Forwarded-For", "X_Forwarded_For", "X-Forwarded-Proto", "X_Forwarded_Proto",
	"X-Forwarded-Host", "X_Forwarded_Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X_Forwarded_Ssl",
	"X-Request-Id", "X_Request_Id",
}

func TestStrippedRequestHeader(t *testing.T) {
	for _, n := range spoofedHeaders {
		if !strippedRequestHeader([]byte(n)) {
			t.Errorf("%s is forwarded", n)
		}
	}
	for _, n := range []string{"X-Client", "Client-Certs", "X-Forwarded", "Authorization", "X-Request-Ids", "Content-Type", "Accept"} {
		if strippedRequestHeader([]byte(n)) {
			t.Errorf("%s is stripped", n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { strippedRequestHeader([]byte("X_Forwarded_Client_Cert")) }); n != 0 {
		t.Fatalf("allocates %v", n)
	}
}

// TestSpoofedHeadersNeverReachUpstream: every spelling of every header the
// gateway sets, sent by Go, curl and Python clients over HTTP/1.1 and
// HTTP/2, to a WSGI upstream (wsgiref) that merges '_' and '-': the
// upstream sees the gateway's values and none of the client's.
func TestSpoofedHeadersNeverReachUpstream(t *testing.T) {
	py := pythonWith(t, "requests", "httpx", "h2")
	curl := testenv.RequirePeer(t, "curl")
	cmd := exec.Command(py, "testdata/wsgi_upstream.py")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	var port struct{ Port int }
	if err := json.NewDecoder(out).Decode(&port); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRoutes(fmt.Sprintf(`
routes:
  - name: wsgi
    upstream: http://127.0.0.1:%d
    allow: ["spiffe://example.org/svc/*"]
`, port.Port)))
	leaf := e.ca.Issue(t, withSvc("client"))
	certFile, keyFile := leaf.WriteFiles(t, e.dir, "client")
	caFile := e.dir + "/bundle.pem"
	url := "https://localhost:" + strings.Split(e.addr(), ":")[1] + "/env"

	var pyArgs, curlArgs []string
	for _, n := range spoofedHeaders {
		pyArgs = append(pyArgs, n+"=evil-"+n)
		curlArgs = append(curlArgs, "-H", n+": evil-"+n)
	}
	goGet := func(h2 bool) []byte {
		req, _ := http.NewRequest("GET", url, nil)
		for _, n := range spoofedHeaders {
			req.Header[n] = []string{"evil-" + n} // the name as written, not canonicalized
		}
		resp, err := e.client(leaf, h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if h2 && resp.ProtoMajor != 2 {
			t.Fatalf("proto %s", resp.Proto)
		}
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	run := func(name string, args ...string) []byte {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return b
	}
	for _, c := range []struct {
		name string
		get  func() []byte
	}{
		{"go-h1", func() []byte { return goGet(false) }},
		{"go-h2", func() []byte { return goGet(true) }},
		{"curl-h1", func() []byte {
			return run(curl, append([]string{"-sSf", "--http1.1", "--cert", certFile, "--key", keyFile, "--cacert", caFile, url}, curlArgs...)...)
		}},
		{"curl-h2", func() []byte {
			return run(curl, append([]string{"-sSf", "--http2", "--cert", certFile, "--key", keyFile, "--cacert", caFile, url}, curlArgs...)...)
		}},
		{"python-requests-h1", func() []byte {
			return run(py, append([]string{"testdata/header_client.py", "h1", url, certFile, keyFile, caFile}, pyArgs...)...)
		}},
		{"python-httpx-h2", func() []byte {
			return run(py, append([]string{"testdata/header_client.py", "h2", url, certFile, keyFile, caFile}, pyArgs...)...)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var env map[string]string
			b := c.get()
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatalf("upstream answered %q: %v", b, err)
			}
			for k, v := range env {
				if strings.Contains(v, "evil") {
					t.Errorf("the upstream saw %s=%q", k, v)
				}
			}
			want := map[string]string{
				"HTTP_X_CLIENT_IDENTITY":    "spiffe://example.org/svc/client",
				"HTTP_X_CLIENT_CERT_SERIAL": leaf.Cert.SerialNumber.Text(16),
				"HTTP_X_FORWARDED_FOR":      "127.0.0.1",
				"HTTP_X_REAL_IP":            "127.0.0.1",
				"HTTP_X_FORWARDED_PROTO":    "https",
				"HTTP_X_FORWARDED_HOST":     "localhost:" + strings.Split(e.addr(), ":")[1],
				"HTTP_FORWARDED":            `for=127.0.0.1;proto=https;host="localhost:` + strings.Split(e.addr(), ":")[1] + `"`,
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("%s = %q, want %q", k, env[k], v)
				}
			}
			if !strings.HasPrefix(env["HTTP_X_FORWARDED_CLIENT_CERT"], "By=spiffe://example.org/gateway/gw1;Hash=") {
				t.Errorf("XFCC = %q", env["HTTP_X_FORWARDED_CLIENT_CERT"])
			}
		})
	}
}

// appendForbiddenJSON gives json.Marshal's bytes, on its fast path and
// off it.
func TestForbiddenJSONIsMarshal(t *testing.T) {
	for _, in := range [][4]string{
		{"spiffe://example.org/svc/a", "GET", "api.example.org:8443", "/denied"},
		{"", "", "", ""},
		{"spiffe://example.org/svc/a", "GET", "a", "/x?q=<script>&b=\"c\""},
		{"spiffe://example.org/svc/é", "GET", "a", "/\x00\b\f\n\t\x7f\u2028"},
		{"spiffe://example.org/svc/a", "GET", "a", "/\xff\\"},
	} {
		want := forbiddenJSONMarshal(in[0], in[1], in[2], in[3])
		var buf [8]byte
		if got := appendForbiddenJSON(buf[:0], in[0], in[1], in[2], in[3]); string(got) != string(want) {
			t.Errorf("%q:\n got %s\nwant %s", in, got, want)
		}
		if got := appendForbiddenJSON([]byte("x"), in[0], in[1], in[2], in[3]); string(got) != "x"+string(want) {
			t.Errorf("%q appended to x: %s", in, got)
		}
	}
}

package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
)

// The differential path test: many request targets, each sent over
// HTTP/1.1 and HTTP/2 through the gateway to real upstreams, which report
// the route the gateway chose (each route has its own upstream port) and
// the path they resolved the request to. The route chosen must be the
// route that path belongs to: no upstream may serve a path outside the
// route the gateway authorized.

// upstreamReply is what every differential upstream answers.
type upstreamReply struct {
	Route    string   `json:"route"`    // the gateway route, by the port it came in on
	Raw      string   `json:"raw"`      // the target the upstream received
	Resolved []string `json:"resolved"` // the path(s) it resolved that to
	Location string   `json:"location"` // nginx: the location block that matched
}

// diffRoutes routes /admin to one upstream port and everything else to
// another; the client may use both, so each request reaches the upstream
// and the port says which route the gateway chose.
const diffRoutes = `
routes:
  - name: admin
    path_prefix: /admin
    upstream: ADMIN
    allow: ["spiffe://example.org/svc/*"]
  - name: api
    upstream: API
    allow: ["spiffe://example.org/svc/*"]
`

// routeOf is the gateway route a resolved (decoded) path belongs to.
func routeOf(p string) string {
	if p == "/admin" || strings.HasPrefix(p, "/admin/") {
		return "admin"
	}
	return "api"
}

func goDiffUpstream(t *testing.T) (admin, api string) {
	serve := func(route string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A handler sees r.URL.Path (decoded); a ServeMux routes on
			// its cleaned form.
			json.NewEncoder(w).Encode(upstreamReply{Route: route, Raw: r.RequestURI, Resolved: []string{r.URL.Path, path.Clean(r.URL.Path)}})
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	return serve("admin"), serve("api")
}

func pythonDiffUpstream(t *testing.T) (admin, api string) {
	py := pythonWith(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "admin"), 0o755)
	cmd := exec.Command(py, "testdata/path_upstream.py", dir)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	var ports map[string]int
	if err := json.NewDecoder(out).Decode(&ports); err != nil {
		t.Fatalf("python upstream: %v", err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports["admin"]), fmt.Sprintf("http://127.0.0.1:%d", ports["api"])
}

// nginxDiffUpstream runs nginx from the distribution as a reverse proxy
// with a location for /admin and one for /, in front of a backend that
// reports what nginx told it: the location that matched and $uri, the
// normalized path nginx matched it on.
func nginxDiffUpstream(t *testing.T) (admin, api string) {
	ngx := testenv.RequirePeer(t, "nginx")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(upstreamReply{
			Route: r.Header.Get("X-Gw-Route"), Raw: r.RequestURI,
			Resolved: []string{strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("X-Nginx-Uri"), "["), "]")}, Location: r.Header.Get("X-Nginx-Location"),
		})
	}))
	t.Cleanup(backend.Close)
	dir := t.TempDir()
	ports := freePorts(t, 2)
	server := func(port int, route string) string {
		loc := func(prefix, name string) string {
			return fmt.Sprintf(`location %s {
        proxy_pass http://%s;
        proxy_set_header X-Gw-Route %s;
        proxy_set_header X-Nginx-Location %s;
        proxy_set_header X-Nginx-Uri "[$uri]";
      }
`, prefix, backend.Listener.Addr(), route, name)
		}
		// "= /admin" and "/admin/": the route's whole-segment prefix.
		return fmt.Sprintf("server {\n      listen 127.0.0.1:%d;\n      %s      %s      %s    }\n", port, loc("= /admin", "admin"), loc("/admin/", "admin"), loc("/", "root"))
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s;
    proxy_temp_path %[1]s;
    fastcgi_temp_path %[1]s;
    uwsgi_temp_path %[1]s;
    scgi_temp_path %[1]s;
    %[2]s    %[3]s}
`, dir, server(ports[0], "admin"), server(ports[1], "api"))
	cfg := filepath.Join(dir, "nginx.conf")
	os.WriteFile(cfg, []byte(conf), 0o600)
	cmd := exec.Command(ngx, "-e", "stderr", "-p", dir, "-c", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, p := range ports {
		waitListening(t, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
}

// freePorts finds n free ports on 127.0.0.1 for a peer that cannot listen
// on port 0 and say which port it got.
func freePorts(t *testing.T, n int) []int {
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func waitListening(t *testing.T, addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// pathTargets returns the hand-picked attacks plus a seeded sample of
// generated ones: encodings, slashes, dot segments, ';' parameters,
// backslashes, double encoding, overlong UTF-8, mixed case, around /admin.
func pathTargets() []string {
	out := []string{
		"/admin", "/admin/", "/admin/x", "/adminx", "/x", "/", "/%61dmin", "/%41dmin", "/ADMIN", "/Admin", "/%61%64%6d%69%6e",
		"//admin", "///admin/x", "/x/../admin", "/x/%2e%2e/admin", "/x/..%2fadmin", "/x/..%2Fadmin", "/%2fadmin", "/%2Fadmin",
		"/x%2f..%2fadmin", "/admin%2fx", "/./admin", "/%2e/admin", "/admin;x=1", "/admin%3bx", "/..;/admin", "/x/..;/admin",
		"/\\admin", "/x\\..\\admin", "/%5cadmin", "/x/%5c../admin", "/%252e%252e/admin", "/%252fadmin", "/%2561dmin",
		"/%c0%afadmin", "/x/%c0%ae%c0%ae/admin", "/x/%e0%80%ae%e0%80%ae/admin", "/admin%00", "/admin%0a", "/admin%20",
		"/admin?x", "/x?/../admin", "/x?a=/admin", "/%2e%2e/admin", "/.%2e/admin", "/x/.%2E/admin", "/admin/.", "/admin/..",
		"/admin/../x", "/x/y/../../admin", "/x//..//admin", "/x/%2e%2e%2f%61dmin", "/admin%2e", "/admin.", "/admin..",
		"/%61dmin/%2e%2e/x", "/a%64min", "/adm%69n/", "/x/;/admin", "/;/admin", "/admin%09", "/%7eadmin",
	}
	pre := []string{"", "/x", "/x/y", "/%78"}
	sep := []string{"/", "//", "/%2f", "/%2F", "/./", "/../", "/%2e/", "/%2e%2e/", "/.%2e/", "\\", "%5c", "/;x/", "/..;/", "/%252e%252e/"}
	name := []string{"admin", "%61dmin", "adm%69n", "ADMIN", "admin;a=b", "%2561dmin", "a%64min", "adMin"}
	suf := []string{"", "/", "/z", "/.", "/..", "?q", "%2f", "%00", "%3b", "?/../admin"}
	r := rand.New(rand.NewPCG(9, 9))
	for range 300 {
		out = append(out, pre[r.IntN(len(pre))]+sep[r.IntN(len(sep))]+name[r.IntN(len(name))]+suf[r.IntN(len(suf))])
	}
	return out
}

// h1Sender sends requests on a keep-alive HTTP/1.1 connection, opening a
// new one when the gateway closed the last.
type h1Sender struct {
	e  *env
	tc *tls.Config
	c  *tls.Conn
	br *bufio.Reader
}

func (s *h1Sender) do(target string) (int, []byte, error) {
	if s.c == nil {
		c, err := tls.Dial("tcp", s.e.addr(), s.tc)
		if err != nil {
			return 0, nil, err
		}
		s.c, s.br = c, bufio.NewReader(c)
	}
	s.c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(s.c, "GET %s HTTP/1.1\r\nHost: gw.example\r\n\r\n", target)
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		s.close()
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Close || err != nil {
		s.close()
	}
	return resp.StatusCode, body, err
}

func (s *h1Sender) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

func TestPathDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test against real upstreams")
	}
	ca := testca.New(t, td)
	for _, up := range []struct {
		name  string
		start func(*testing.T) (string, string)
	}{
		{"go", goDiffUpstream},
		{"python", pythonDiffUpstream},
		{"nginx", nginxDiffUpstream},
	} {
		t.Run(up.name, func(t *testing.T) {
			admin, api := up.start(t)
			e := newEnv(t, quiet(), withCA(ca), withRoutes(strings.NewReplacer("ADMIN", admin, "API", api).Replace(diffRoutes)))
			leaf := e.ca.Issue(t, withSvc("a"))
			tc := e.tlsConfig(leaf)
			tc.NextProtos = []string{"http/1.1"}
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			h1 := &h1Sender{e: e, tc: tc}
			defer h1.close()
			h2 := &h2Sender{e: e, leaf: leaf}
			counts := map[string]int{}
			check := func(proto, target string, status int, body []byte) {
				t.Helper()
				if status != 200 {
					counts[fmt.Sprintf("%s %d", proto, status)]++
					return
				}
				var rep upstreamReply
				if err := json.Unmarshal(body, &rep); err != nil {
					t.Fatalf("%s %q: body %q: %v", proto, target, body, err)
				}
				counts[proto+" 200 "+rep.Route]++
				for _, p := range rep.Resolved {
					if want := routeOf(p); want != rep.Route {
						t.Errorf("%s %q: the gateway chose route %s, but %s resolved it to %q (route %s); it received %q",
							proto, target, rep.Route, up.name, p, want, rep.Raw)
					}
				}
				if rep.Location == "admin" && rep.Route != "admin" {
					t.Errorf("%s %q: nginx matched location /admin behind route %s", proto, target, rep.Route)
				}
			}
			for _, target := range pathTargets() {
				status, body, err := h1.do(target)
				if err != nil {
					t.Fatalf("h1 %q: %v", target, err)
				}
				check("h1", target, status, body)
				if !strings.ContainsAny(target, "\\") {
					// Absolute form over HTTP/1.1 too.
					status, body, err = h1.do("https://gw.example" + target)
					if err != nil {
						t.Fatalf("h1 absolute %q: %v", target, err)
					}
					check("h1-absolute", target, status, body)
				}
				resp, err := h2.do(target)
				if err != nil {
					t.Fatalf("h2 %q: %v", target, err)
				}
				if resp.reset != 0 {
					// net/http2 refused the :path before the gateway saw it.
					counts["h2 reset "+resp.reset.String()]++
					continue
				}
				check("h2", target, resp.status, resp.body)
			}
			t.Logf("%s: outcomes %v", up.name, counts)
			if counts["h1 200 admin"] == 0 || counts["h1 200 api"] == 0 || counts["h1 400"] == 0 || counts["h2 200 admin"] == 0 || counts["h2 400"] == 0 {
				t.Fatalf("the targets do not exercise every outcome: %v", counts)
			}
		})
	}
}

// h2Sender sends requests with arbitrary :path values, one HTTP/2
// connection each (rawH2).
type h2Sender struct {
	e    *env
	leaf *testca.Leaf
}

func (s *h2Sender) do(path string) (*h2Response, error) {
	return s.e.rawH2(s.leaf, "GET", "gw.example", path)
}

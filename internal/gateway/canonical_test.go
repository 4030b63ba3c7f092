package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// canonicalRoutes: a GET-only route and a host-scoped route ahead of a
// broad one, so that a method or host read two ways would pick a
// different route.
const canonicalRoutes = `
routes:
  - name: reports
    path_prefix: /reports
    methods: [GET]
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/reader"]
  - name: admin-host
    host: admin.example.org
    upstream: UPSTREAM
    allow: ["spiffe://example.org/admin/alice"]
  - name: admin
    path_prefix: /admin
    upstream: UPSTREAM
    allow: ["spiffe://example.org/admin/alice"]
  - name: api
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
`

// TestMethodsAndHostsCanonical: "get" is GET for routing (it does not skip
// the [GET] route to the broad one) and is forwarded upper case; an
// unknown method is refused with 501; a host-scoped route is matched in
// any case and with a trailing dot; an absolute-form target is routed by
// its path and must name the Host's authority.
func TestMethodsAndHostsCanonical(t *testing.T) {
	e := newEnv(t, withRoutes(canonicalRoutes))
	svc := e.ca.Issue(t, withSvc("writer"))
	for _, tc := range []struct {
		name, raw   string
		status      int
		reason      string
		route       string
		upstreamSaw string // method and target the upstream received
	}{
		{"lowercase get takes the GET route", "get /reports/q1 HTTP/1.1\r\nHost: a\r\n\r\n", 403, "identity_not_allowed", "reports", ""},
		{"mixed case Get too", "Get /reports/q1 HTTP/1.1\r\nHost: a\r\n\r\n", 403, "identity_not_allowed", "reports", ""},
		{"POST falls through", "post /reports/q1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 200, "allowed", "api", "POST /reports/q1"},
		{"lowercase forwarded upper case", "delete /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", 200, "allowed", "api", "DELETE /x?y=1"},
		{"unknown method", "BREW /x HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown_method", "", ""},
		{"TRACE", "TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n", 501, "unknown_method", "", ""},
		{"host upper case", "GET /x HTTP/1.1\r\nHost: ADMIN.Example.ORG\r\n\r\n", 403, "identity_not_allowed", "admin-host", ""},
		{"host trailing dot", "GET /x HTTP/1.1\r\nHost: admin.example.org.:8443\r\n\r\n", 403, "identity_not_allowed", "admin-host", ""},
		{"absolute form routes by its path", "GET https://a/%61dmin HTTP/1.1\r\nHost: a\r\n\r\n", 403, "identity_not_allowed", "admin", ""},
		{"absolute form host", "GET http://admin.example.org/x HTTP/1.1\r\nHost: admin.example.org\r\n\r\n", 403, "identity_not_allowed", "admin-host", ""},
		{"absolute form host mismatch", "GET https://admin.example.org/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "host_mismatch", "", ""},
		{"absolute form forwarded as origin form", "GET https://a/x/%7e HTTP/1.1\r\nHost: a\r\n\r\n", 200, "allowed", "api", "GET /x/~"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.logBuf.Reset()
			hits := e.hits.Load()
			c := e.dial(svc)
			fmt.Fprint(c, tc.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, body)
			}
			l := e.waitLog(func(m map[string]any) bool { return m["kind"] == "http" })
			if l["reason"] != tc.reason || (tc.route != "" && l["route"] != tc.route) {
				t.Fatalf("log %v, want reason %s route %s", l, tc.reason, tc.route)
			}
			if tc.upstreamSaw == "" {
				if e.hits.Load() != hits {
					t.Fatal("the upstream saw the request")
				}
				return
			}
			r := e.lastRequest()
			if got := r.Method + " " + r.RequestURI; got != tc.upstreamSaw {
				t.Fatalf("upstream saw %q, want %q", got, tc.upstreamSaw)
			}
		})
	}
}

// TestHTTP2Canonical: the same rules over HTTP/2, where :method, :path and
// :authority arrive as the client wrote them; a Host header that differs
// from :authority is refused by net/http2 before any route is consulted.
func TestHTTP2Canonical(t *testing.T) {
	e := newEnv(t, withRoutes(canonicalRoutes))
	svc := e.ca.Issue(t, withSvc("writer"))
	for _, tc := range []struct {
		name, method, authority, path string
		fields                        []string
		status                        int
		route                         string
		upstreamSaw                   string
	}{
		{"lowercase get", "get", "a", "/reports/q1", nil, 403, "reports", ""},
		{"encoded path", "GET", "a", "/%61dmin/x", nil, 403, "admin", ""},
		{"double slash", "GET", "a", "//admin", nil, 403, "admin", ""},
		{"dot segment", "GET", "a", "/x/%2e%2e/admin", nil, 400, "", ""},
		{"encoded slash", "GET", "a", "/x/..%2fadmin", nil, 400, "", ""},
		{"host trailing dot", "GET", "ADMIN.example.org.", "/x", nil, 403, "admin-host", ""},
		{"canonical forwarded", "patch", "a", "/x//%7e%41?q=%2F", []string{"content-length", "0"}, 200, "api", "PATCH /x/~A?q=%2F"},
		{"unknown method", "BREW", "a", "/x", nil, 501, "", ""},
		{"authority and Host differ", "GET", "a", "/admin", []string{"host", "admin.example.org"}, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits := e.hits.Load()
			resp, err := e.rawH2(svc, tc.method, tc.authority, tc.path, tc.fields...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != tc.status {
				t.Fatalf("status %d (reset %v), want %d: %s", resp.status, resp.reset, tc.status, resp.body)
			}
			if tc.route != "" {
				l := e.waitLog(func(m map[string]any) bool { return m["route"] == tc.route && m["kind"] == "http" })
				if l["status"] != float64(tc.status) {
					t.Fatalf("log %v", l)
				}
			}
			if tc.upstreamSaw == "" {
				if e.hits.Load() != hits {
					t.Fatal("the upstream saw the request")
				}
				return
			}
			r := e.lastRequest()
			if got := r.Method + " " + r.RequestURI; got != tc.upstreamSaw {
				t.Fatalf("upstream saw %q, want %q", got, tc.upstreamSaw)
			}
		})
	}
}

// TestWebSocketCanonical: an upgrade is canonicalized and routed like any
// request; a bypass attempt is refused before anything is tunnelled.
func TestWebSocketCanonical(t *testing.T) {
	e := newEnv(t, withRoutes(canonicalRoutes))
	svc := e.ca.Issue(t, withSvc("writer"))
	for _, tc := range []struct {
		path   string
		status int
	}{{"/%61dmin/ws", 403}, {"/x/..%2fadmin/ws", 400}, {"//admin/ws", 403}, {"/w%73", 101}} {
		c := e.dial(svc)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", tc.path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		c.Close()
	}
	if r := e.lastRequest(); r == nil || r.URL.Path != "/ws" {
		t.Fatalf("upstream saw %v", r)
	}
}

// TestExplainCanonical: policy test (Explain) canonicalizes and routes
// with the gateway's code.
func TestExplainCanonical(t *testing.T) {
	e := newEnv(t, withRoutes(canonicalRoutes))
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	leaf := e.ca.Issue(t, withSvc("writer"))
	for _, tc := range []struct {
		host, method, target string
		route, path, bad     string
	}{
		{"a", "get", "/reports/q", "reports", "/reports/q", ""},
		{"a", "GET", "/%61dmin", "admin", "/admin", ""},
		{"a", "GET", "//admin//x", "admin", "/admin/x", ""},
		{"ADMIN.example.org.", "GET", "/x", "admin-host", "/x", ""},
		{"a", "GET", "/x/..%2fadmin", "", "", "path_encoded_slash"},
		{"a", "GET", "/x/%2e%2e/admin", "", "", "path_dot_segment"},
		{"a", "BREW", "/x", "", "", "unknown_method"},
	} {
		ex, err := Explain(cfg, leaf.Chain, time.Now(), tc.host, tc.method, tc.target)
		if err != nil {
			t.Fatal(err)
		}
		route := ""
		if ex.Decision.Route != nil {
			route = ex.Decision.Route.Name
		}
		bad := ""
		if ex.BadRequest != nil {
			bad = ex.BadRequest.Reason
		}
		if route != tc.route || bad != tc.bad || (tc.bad == "" && ex.Path != tc.path) {
			t.Errorf("Explain(%s %s %s) = route %q path %q bad %q; want %q %q %q", tc.host, tc.method, tc.target, route, ex.Path, bad, tc.route, tc.path, tc.bad)
		}
	}
}

func TestPathPrefixMustBeCanonical(t *testing.T) {
	for _, tc := range []struct{ prefix, err string }{
		{"/%61dmin", `gateway: route "r": path_prefix "/%61dmin" is not in canonical form; canonical: /admin`},
		{"//admin", `gateway: route "r": path_prefix "//admin" is not in canonical form; canonical: /admin`},
		{"/a/../b", `gateway: route "r": path_prefix "/a/../b" is not in canonical form; canonical: (none: request path has a '.' or '..' segment, raw or encoded)`},
		{"/a;b", `gateway: route "r": path_prefix "/a;b" is not in canonical form; canonical: (none: request path has a ';' (path parameters are not accepted))`},
	} {
		e := &env{t: t, dir: t.TempDir()}
		e.ca = testca.New(t, td)
		e.ca.WriteBundle(t, e.dir)
		e.upstream = nil
		y := fmt.Sprintf("listen: 127.0.0.1:0\ntrust_domain: example.org\nbundle: %[1]s/bundle.pem\ncert: %[1]s/bundle.pem\nkey: y\nroutes:\n  - name: r\n    path_prefix: %[2]q\n    upstream: http://127.0.0.1:1\n    allow: [\"spiffe://example.org/a\"]\n", e.dir, tc.prefix)
		path := e.dir + "/gw.yaml"
		if err := writeFile(path, y); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(path); err == nil || err.Error() != tc.err {
			t.Errorf("prefix %q: %v, want %s", tc.prefix, err, tc.err)
		}
	}
}

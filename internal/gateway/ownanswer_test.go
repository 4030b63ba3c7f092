package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

// TestOwnAnswersAreJSONNoSniffNoStore: every answer the gateway makes
// itself, rather than relays from an upstream, over HTTP/1.1 and HTTP/2,
// is application/json with X-Content-Type-Options: nosniff and
// Cache-Control: no-store, and its body parses as the error envelope:
// the refusals of a connection (401 no certificate, 403 refused
// certificate), a bad request (400), a route refusal (403), a rate limit
// (429), an upstream that is down (502) and stale revocation data (503).
// An upstream's own answer keeps its headers: the gateway adds nothing to
// it.
func TestOwnAnswersAreJSONNoSniffNoStore(t *testing.T) {
	e := newEnv(t, withRoutes(`
routes:
  - name: admin
    path_prefix: /admin
    upstream: UPSTREAM
    allow: ["spiffe://example.org/admin/alice"]
  - name: down
    path_prefix: /down
    upstream: http://127.0.0.1:1
    allow: ["spiffe://example.org/svc/*"]
  - name: limited
    path_prefix: /limited
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
    rate_limit:
      requests_per_second: 0.001
      burst: 1
  - name: api
    path_prefix: /
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
`))
	stale := newEnv(t, withStaleness(time.Minute, nil, nil))
	svc := e.ca.Issue(t, withSvc("billing"))
	foreign := testca.New(t, td).Issue(t, withSvc("billing"))
	cases := []struct {
		name   string
		env    *env
		leaf   *testca.Leaf
		path   string
		status int
		code   string
	}{
		{"no certificate", e, nil, "/v1/pay", 401, "no_certificate"},
		{"unknown CA", e, foreign, "/v1/pay", 403, "unknown_authority"},
		{"bad path", e, svc, "/a/%2e%2e/admin", 400, "bad_request"},
		{"route refusal", e, svc, "/admin", 403, "forbidden"},
		{"rate limited", e, svc, "/limited", 429, "rate_limited"},
		{"upstream down", e, svc, "/down", 502, "bad_gateway"},
		{"stale revocation data", stale, stale.ca.Issue(t, withSvc("billing")), "/v1/pay", 503, reasonStale},
	}
	for _, h2 := range []bool{false, true} {
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				c := tc.env.client(tc.leaf, h2)
				// The rate limit's burst is one request: the first
				// passes (HTTP/1.1 run), every later one is refused.
				if tc.status == 429 && !h2 {
					resp, err := c.Get(tc.env.url(tc.path))
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				req, _ := http.NewRequest("GET", tc.env.url("/"), nil)
				req.URL.RawPath, req.URL.Path = tc.path, tc.path
				req.URL.Opaque = "//" + req.URL.Host + tc.path // sent as written
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
					t.Fatalf("answered over %s", resp.Proto)
				}
				var body struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
					t.Fatalf("%s %q (%v), want %d %s", resp.Status, b, err, tc.status, tc.code)
				}
				for k, want := range map[string]string{"Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
					if got := resp.Header.Values(k); len(got) != 1 || got[0] != want {
						t.Errorf("%s: %q, want %q", k, got, want)
					}
				}
			})
		}
	}
	// An upstream's answer is relayed as it is.
	for _, h2 := range []bool{false, true} {
		resp, err := e.client(svc, h2).Get(e.url("/v1/pay"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "" || resp.Header.Get("Cache-Control") != "" {
			t.Errorf("upstream answer: %s %v", resp.Status, resp.Header)
		}
	}
}

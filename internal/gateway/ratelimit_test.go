package gateway

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testenv"
)

const rateLimitedRoutes = `
routes:
  - name: api
    path_prefix: /
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
    rate_limit:
      requests_per_second: 0.5
      burst: 3
      overrides:
        - identities: ["spiffe://example.org/svc/batch/*"]
          requests_per_second: 100
          burst: 5
`

// TestRateLimitFromCurlAndPython: per identity on a route, curl and
// Python get the burst, then 429 with Retry-After, RateLimit-Limit and
// RateLimit-Remaining and a JSON reason; another identity has its own
// bucket, an override its own limit, HTTP/2 the same answer; tokens come
// back with (fake) time; every refusal is logged rate_limited and counted
// for the route.
func TestRateLimitFromCurlAndPython(t *testing.T) {
	curl := testenv.RequirePeer(t, "curl")
	py := pythonWith(t, "ssl", "http.client")
	m := &rateMetrics{}
	e := newEnv(t, withRoutes(rateLimitedRoutes), withMetrics(m, io.Discard))
	bundle := e.dir + "/bundle.pem"
	port := strings.Split(e.addr(), ":")[1]
	url := "https://localhost:" + port + "/v1/pay"

	curlCert, curlKey := e.ca.Issue(t, withSvc("curl")).WriteFiles(t, t.TempDir(), "curl")
	var statuses []string
	for i := range 4 {
		out, err := exec.Command(curl, "-sS", "-i", "--http1.1", "--cacert", bundle, "--cert", curlCert, "--key", curlKey, url).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %d: %v\n%s", i, err, out)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		status := strings.Fields(head)[1]
		statuses = append(statuses, status)
		if i == 3 {
			for _, h := range []string{"Retry-After: 2", "RateLimit-Limit: 3", "RateLimit-Remaining: 0", "Content-Type: application/json"} {
				if !strings.Contains(head, "\n"+h+"\n") {
					t.Errorf("curl 429 lacks %q:\n%s", h, head)
				}
			}
			want := `{"error":{"code":"rate_limited","message":"too many requests from this identity on this route (0.5 a second, bursts of 3); retry after 2 s"}}`
			if body != want {
				t.Errorf("curl 429 body %q, want %q", body, want)
			}
		}
	}
	if fmt.Sprint(statuses) != "[200 200 200 429]" {
		t.Errorf("curl statuses %v, want [200 200 200 429]", statuses)
	}

	pyCert, pyKey := e.ca.Issue(t, withSvc("python")).WriteFiles(t, t.TempDir(), "py")
	script := fmt.Sprintf(`
import ssl, http.client
ctx = ssl.create_default_context(cafile=%q)
ctx.load_cert_chain(%q, %q)
for i in range(4):
    c = http.client.HTTPSConnection("localhost", %s, context=ctx)
    c.request("GET", "/v1/pay")
    r = c.getresponse()
    r.read()
    print(r.status, r.getheader("Retry-After"), r.getheader("RateLimit-Limit"), r.getheader("RateLimit-Remaining"))
    c.close()
`, bundle, pyCert, pyKey, port)
	out, err := exec.Command(py, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if want := "200 None None None\n200 None None None\n200 None None None\n429 2 3 0\n"; string(out) != want {
		t.Errorf("python printed\n%s\nwant\n%s", out, want)
	}

	// An override's identities have their own limit; HTTP/2 answers alike.
	batch := e.client(e.ca.Issue(t, withSvc("batch/nightly")), true)
	var got []int
	for range 6 {
		resp, err := batch.Get(e.url("/v1/pay"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got = append(got, resp.StatusCode)
		if resp.StatusCode == 429 && (resp.ProtoMajor != 2 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("RateLimit-Limit") != "5" || resp.Header.Get("RateLimit-Remaining") != "0") {
			t.Errorf("h2 429: proto %d headers %v", resp.ProtoMajor, resp.Header)
		}
	}
	if fmt.Sprint(got) != "[200 200 200 200 200 429]" {
		t.Errorf("override statuses %v", got)
	}

	// Two seconds later curl's identity has one request again.
	e.clock.Advance(2 * time.Second)
	out2, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", bundle, "--cert", curlCert, "--key", curlKey, url).CombinedOutput()
	if err != nil || string(out2) != "200" {
		t.Errorf("curl after 2s: %s %v, want 200", out2, err)
	}

	n := 0
	for _, l := range e.logLines() {
		if l["reason"] == "rate_limited" {
			n++
			if l["status"] != float64(429) || l["route"] != "api" || l["decision"] != "deny" {
				t.Errorf("access log line %v", l)
			}
		}
	}
	if n != 3 {
		t.Errorf("%d rate_limited lines in the access log, want 3", n)
	}
	if got := m.count("api"); got != 3 {
		t.Errorf("rate limited count for api = %d, want 3", got)
	}
	if hits := e.hits.Load(); hits != 3+3+5+1 {
		t.Errorf("upstream saw %d requests, want %d (refusals never forwarded)", hits, 3+3+5+1)
	}
}

type rateMetrics struct {
	nopMetrics
	mu sync.Mutex
	n  map[string]int
}

func (m *rateMetrics) RateLimited(route string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[route]++
}

func (m *rateMetrics) count(route string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[route]
}

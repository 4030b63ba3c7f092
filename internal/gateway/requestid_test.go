package gateway

import (
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestRequestIDReplacedForwardedAndLogged: every request gets a fresh id
// from the gateway, whatever the client sent; the upstream receives it as
// X-Request-Id and the access log line carries the same id, the schema
// version and the upstream.
func TestRequestIDReplacedForwardedAndLogged(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("billing"))
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for _, h2 := range []bool{false, true} {
		for _, clientID := range []string{"", "evil-id", "0123456789abcdef0123456789abcdef"} {
			e.logBuf.Reset()
			req, _ := http.NewRequest("GET", e.url("/v1/x"), nil)
			if clientID != "" {
				req.Header.Set("X-Request-Id", clientID)
				req.Header.Add("x_request_id", clientID)
			}
			if status, _ := getJSON(t, e.client(leaf, h2), req); status != 200 {
				t.Fatalf("status %d", status)
			}
			got := e.lastRequest().Header.Values("X-Request-Id")
			if len(got) != 1 || !hex32.MatchString(got[0]) || got[0] == clientID || seen[got[0]] {
				t.Fatalf("h2=%v client sent %q: upstream got X-Request-Id %q", h2, clientID, got)
			}
			seen[got[0]] = true
			// The line is logged once the response is out: wait for it.
			lines := e.logLines()
			for deadline := time.Now().Add(5 * time.Second); len(lines) == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				lines = e.logLines()
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines", len(lines))
			}
			l := lines[0]
			if l["request_id"] != got[0] || l["schema"] != float64(1) || l["upstream"] == nil || l["upstream"] == "" {
				t.Fatalf("h2=%v log line %v, upstream saw id %s", h2, l, got[0])
			}
		}
	}
}

package gateway

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/gateway/h1/h1test"
)

// TestSmugglingRefused drives the codec's smuggling corpus (h1test) over
// the wire: each is answered with its
// status, logged with its reason, the connection is closed, and nothing
// but a body the gateway had begun to stream reaches the upstream.
func TestSmugglingRefused(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	for _, tc := range h1test.SmugglingCases() {
		t.Run(tc.Name, func(t *testing.T) {
			e.logBuf.Reset()
			hits := e.hits.Load()
			status, closed := e.rawRequest(leaf, tc.Raw)
			if want := fmt.Sprintf("%d %s", tc.Status, http.StatusText(tc.Status)); status != want || !closed {
				t.Fatalf("status %q closed=%v, want %q and closed", status, closed, want)
			}
			l := e.waitLog(func(m map[string]any) bool { return m["reason"] == tc.Reason })
			if l["decision"] != "deny" {
				t.Fatalf("log %v", l)
			}
			if !tc.Body && e.hits.Load() != hits {
				t.Fatal("the upstream saw the request")
			}
		})
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	e := newEnv(t)
	c := e.dial(e.ca.Issue(t, withSvc("a")))
	start := time.Now()
	// A slow client trickles its header one byte at a time.
	go func() {
		for _, b := range []byte("GET /x HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("s", 100)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != 408 || elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("status %d after %v", resp.StatusCode, elapsed)
	}
	e.waitLog(func(m map[string]any) bool {
		return m["reason"] == "read_header_timeout" && m["status"] == float64(408)
	})
	if e.hits.Load() != 0 {
		t.Fatal("upstream saw the request")
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	e := newEnv(t, withYAML("\n"))
	c := e.dial(e.ca.Issue(t, withSvc("a")))
	_ = c
	// Default idle timeout is long; this only checks that an idle client
	// connection is tracked and stays open without requests.
	time.Sleep(50 * time.Millisecond)
	if e.gw.Connections() != 1 {
		t.Fatalf("connections = %d", e.gw.Connections())
	}
}

package gateway

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// A keep-alive connection waits for its next request holding no session
// (serveH1): the first byte wakes it up, and after parkAfter it is parked
// (park.go). None of that may change what a client sees.
func TestIdleWaitServesEveryRequest(t *testing.T) {
	e := newEnv(t)
	// A short idle timeout, by a reload of the same config with it.
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(e.cfgPath, strings.Replace(string(cfg), "timeouts:\n", "timeouts:\n  idle: 4s\n", 1))
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	leaf := e.ca.Issue(t, withSvc("a"))
	c := e.dial(leaf)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	get := func(what string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"path":"/`) {
			t.Fatalf("%s: %d %s", what, resp.StatusCode, b)
		}
	}

	// Two requests in one write: the second is already read with the
	// first and served from the same session.
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: api\r\n\r\nGET /two HTTP/1.1\r\nHost: api\r\n\r\n")
	get("first pipelined")
	get("second pipelined")
	// A request whose first byte comes alone.
	io.WriteString(c, "G")
	time.Sleep(20 * time.Millisecond) // read_header is 300ms
	io.WriteString(c, "ET /three HTTP/1.1\r\nHost: api\r\n\r\n")
	get("split")
	// Idle longer than parkAfter: the connection is parked (its wait
	// moved to a new goroutine where there is no poller) and still serves.
	time.Sleep(parkAfter + 500*time.Millisecond)
	if n := e.gw.Connections(); n != 1 {
		t.Fatalf("connections after parking: %d", n)
	}
	if canPark && e.parked() != 1 {
		t.Fatalf("parked connections: %d", e.parked())
	}
	io.WriteString(c, "GET /four HTTP/1.1\r\nHost: api\r\n\r\n")
	get("after parking")

	// The idle timeout still counts from the last request, parked or
	// not: the gateway closes the connection and forgets it.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want the gateway to close it (EOF)", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.gw.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections = %d after the idle timeout", e.gw.Connections())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var paths []string
	for _, m := range e.logLines() {
		if m["kind"] == "http" {
			paths = append(paths, m["path"].(string))
		}
	}
	if strings.Join(paths, " ") != "/one /two /three /four" {
		t.Fatalf("access log paths %v", paths)
	}
}

// An HTTP/1.1 connection is served on its handshaker while its requests
// come within handshakerWait (serveFirst); a longer wait moves to a new
// goroutine, before the first request or between two, and the idle
// timeout still runs from the last answer.
func TestServedOnHandshakerThenHandedOff(t *testing.T) {
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(e.cfgPath, strings.Replace(string(cfg), "timeouts:\n", "timeouts:\n  idle: 2s\n", 1))
	if err := e.gw.ReloadFrom(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	leaf := e.ca.Issue(t, withSvc("a"))
	for _, firstPause := range []time.Duration{0, 3 * handshakerWait} {
		c := e.dial(leaf)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		get := func(what string) {
			t.Helper()
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("pause %v: %s: %v", firstPause, what, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("pause %v: %s: %d", firstPause, what, resp.StatusCode)
			}
		}
		time.Sleep(firstPause)
		io.WriteString(c, "GET /one HTTP/1.1\r\nHost: api\r\n\r\n")
		get("first")
		io.WriteString(c, "GET /two HTTP/1.1\r\nHost: api\r\n\r\n")
		get("second, at once")
		time.Sleep(3 * handshakerWait)
		io.WriteString(c, "GET /three HTTP/1.1\r\nHost: api\r\n\r\n")
		get("third, after a pause")
		last := time.Now()
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("pause %v: idle connection: read %v, want EOF at the idle timeout", firstPause, err)
		}
		if d := time.Since(last); d < 1900*time.Millisecond || d > 10*time.Second {
			t.Errorf("pause %v: closed %v after the last answer, want the 2s idle timeout", firstPause, d)
		}
		c.Close()
	}
}

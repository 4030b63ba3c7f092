package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSmugglingRefused(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	long := strings.Repeat("a", 5000)
	for _, tc := range []struct {
		name, raw, status, reason string
		upstreamMaySee            bool
	}{
		{"CL and TE", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request", "smuggling_te_cl", false},
		{"TE and CL", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "400 Bad Request", "smuggling_te_cl", false},
		{"duplicate CL same", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "400 Bad Request", "smuggling_duplicate_cl", false},
		{"duplicate CL differ", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc", "400 Bad Request", "smuggling_duplicate_cl", false},
		{"CL list", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "400 Bad Request", "bad_content_length", false},
		{"CL sign", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", "400 Bad Request", "bad_content_length", false},
		{"duplicate TE", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request", "smuggling_duplicate_te", false},
		{"TE list", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501 Not Implemented", "unsupported_transfer_encoding", false},
		{"TE obfuscated", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "501 Not Implemented", "unsupported_transfer_encoding", false},
		{"space before colon", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "400 Bad Request", "bad_header", false},
		{"obs-fold", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "400 Bad Request", "obs_fold", false},
		{"obs-fold TE", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", "501 Not Implemented", "unsupported_transfer_encoding", false},
		{"bare CR", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\rX-B: c\r\n\r\n", "400 Bad Request", "bad_header", false},
		{"NUL in value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", "400 Bad Request", "bad_header", false},
		{"over-long header", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: " + long + "\r\n\r\n", "431 Request Header Fields Too Large", "header_too_large", false},
		{"missing Host", "GET /x HTTP/1.1\r\n\r\n", "400 Bad Request", "missing_host", false},
		{"duplicate Host", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request", "duplicate_host", false},
		{"absolute form", "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", "bad_target", false},
		{"dot segment", "GET /x/../admin HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", "bad_target", false},
		{"encoded dot segment", "GET /x/%2e%2E/admin HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", "bad_target", false},
		{"HTTP/2 preface over h1", "GET /x HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported", "bad_version", false},
		{"bad chunk size", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "400 Bad Request", "bad_chunked_body", true},
		{"chunk size overflow", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", "400 Bad Request", "bad_chunked_body", true},
		{"chunk size LF only", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "400 Bad Request", "bad_chunked_body", true},
		{"chunk data overrun", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", "400 Bad Request", "bad_chunked_body", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.logBuf.Reset()
			hits := e.hits.Load()
			status, closed := e.rawRequest(leaf, tc.raw)
			if status != tc.status || !closed {
				t.Fatalf("status %q closed=%v, want %q and closed", status, closed, tc.status)
			}
			l := e.waitLog(func(m map[string]any) bool { return m["reason"] == tc.reason })
			if l["decision"] != "deny" {
				t.Fatalf("log %v", l)
			}
			if !tc.upstreamMaySee && e.hits.Load() != hits {
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

func TestParseRequest(t *testing.T) {
	var r request
	head := "PUT /a/b?c=d HTTP/1.1\r\nHost: api.example.org:8443\r\nContent-Length: 12\r\nConnection: keep-alive, X-Secret\r\nExpect: 100-continue\r\n\r\n"
	if err := parseRequest([]byte(head), &r); err != nil {
		t.Fatal(err)
	}
	if r.method != "PUT" || string(r.path) != "/a/b" || string(r.target) != "/a/b?c=d" || string(r.host) != "api.example.org:8443" ||
		r.contentLength != 12 || r.chunked || r.close || !r.expect100 || len(r.connTokens) != 2 || len(r.headers) != 4 {
		t.Fatalf("parsed %+v", r)
	}
	if err := parseRequest([]byte("GET / HTTP/1.0\n\n"), &r); err != nil || !r.close || r.minor != 0 {
		t.Fatalf("HTTP/1.0: %+v %v", r, err)
	}
	if err := parseRequest([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"), &r); err != nil || !r.upgrade {
		t.Fatalf("upgrade: %+v %v", r, err)
	}
	for _, tc := range []struct{ in, msg string }{
		{"GET  HTTP/1.1\r\n\r\n", "malformed request line"},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "malformed method"},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host header"},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: nothing\r\n\r\n", "unsupported Expect header"},
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"},
		{"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "request target has an invalid character"},
		{"GET / HTTP/1.1\r\n: x\r\n\r\n", "malformed header line"},
	} {
		err := parseRequest([]byte(tc.in), &r)
		if err == nil || err.msg != tc.msg {
			t.Errorf("parseRequest(%q) = %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func TestReadHead(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nrest"), 16)
	head, err := readHead(br, nil, 100)
	if err != nil || string(head) != "GET / HTTP/1.1\r\nHost: a\r\n\r\n" {
		t.Fatalf("head %q %v", head, err)
	}
	br = bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nHost: "+strings.Repeat("a", 100)+"\r\n\r\n"), 16)
	if _, err := readHead(br, nil, 64); !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("err %v", err)
	}
	br = bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost"))
	if _, err := readHead(br, nil, 64); err != io.EOF {
		t.Fatalf("err %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
		"GET / HTTP/1.0\n\n",
		"GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n X: y\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r request
		if err := parseRequest(data, &r); err != nil {
			if err.status < 400 || err.reason == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		// What the parser accepts has one unambiguous framing.
		if r.chunked && r.contentLength >= 0 {
			t.Fatal("both chunked and a content length")
		}
		if len(r.path) == 0 || r.path[0] != '/' || hasDotSegment(r.path) {
			t.Fatalf("accepted path %q", r.path)
		}
	})
}

func FuzzCopyChunked(f *testing.F) {
	f.Add([]byte("3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("a;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("zz\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out strings.Builder
		bw := bufio.NewWriter(&out)
		n, err := copyChunked(bw, bufio.NewReader(strings.NewReader(string(data))), bw.Flush, true)
		if err != nil {
			return
		}
		bw.Flush()
		// Re-encoded output decodes to the same number of bytes.
		var again strings.Builder
		bw2 := bufio.NewWriter(&again)
		m, err := copyChunked(bw2, bufio.NewReader(strings.NewReader(out.String())), bw2.Flush, true)
		if err != nil || m != n {
			t.Fatalf("re-encoded body: %d vs %d bytes, %v", m, n, err)
		}
	})
}

package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/gateway/h1/h1test"
)

func TestParseRequest(t *testing.T) {
	var r Request
	head := "PUT /a/b?c=d HTTP/1.1\r\nHost: api.example.org:8443\r\nContent-Length: 12\r\nConnection: keep-alive, X-Secret\r\nExpect: 100-continue\r\n\r\n"
	if err := ParseRequest([]byte(head), &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "PUT" || string(r.Path) != "/a/b" || string(r.Target) != "/a/b?c=d" || string(r.Host) != "api.example.org:8443" ||
		r.ContentLength != 12 || r.Chunked || r.Close || !r.Expect100 || len(r.ConnTokens) != 2 || len(r.Headers) != 4 || !r.HasBody() {
		t.Fatalf("parsed %+v", r)
	}
	if err := ParseRequest([]byte("GET HTTPS://api.example.org:8443/a?b HTTP/1.1\r\nHost: x\r\n\r\n"), &r); err != nil ||
		string(r.Authority) != "api.example.org:8443" || string(r.Target) != "/a?b" || string(r.Path) != "/a" {
		t.Fatalf("absolute form: %+v %v", r, err)
	}
	if err := ParseRequest([]byte("GET / HTTP/1.0\n\n"), &r); err != nil || !r.Close || r.Minor != 0 || r.HasBody() {
		t.Fatalf("HTTP/1.0: %+v %v", r, err)
	}
	if err := ParseRequest([]byte("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), &r); err != nil || r.Close {
		t.Fatalf("HTTP/1.0 keep-alive: %+v %v", r, err)
	}
	if err := ParseRequest([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"), &r); err != nil || !r.Upgrade {
		t.Fatalf("upgrade: %+v %v", r, err)
	}
	if err := ParseRequest([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"), &r); err != nil || r.Upgrade {
		t.Fatalf("upgrade to something else: %+v %v", r, err)
	}
	for _, tc := range []struct {
		in     string
		status int
		reason string
		msg    string
	}{
		{"GET  HTTP/1.1\r\n\r\n", 400, "bad_request_line", "malformed request line"},
		{"GET /\r\n\r\n", 400, "bad_request_line", "malformed request line"},
		{"GET / HTTP/1.1 x\r\n\r\n", 400, "bad_request_line", "malformed request line"},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_method", "malformed method"},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_host", "invalid Host header"},
		{"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "bad_host", "invalid Host header"},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: nothing\r\n\r\n", 417, "bad_expect", "unsupported Expect header"},
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_transfer_encoding", "Transfer-Encoding in an HTTP/1.0 request"},
		{"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target has an invalid character"},
		{"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target has an invalid character"},
		{"GET a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path"},
		{"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path"},
		{"GET http://a@b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path"},
		{"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path"},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_target", "request target must be a path starting with '/' or an absolute http(s) URI with a path"},
		{"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "bad_header", "malformed header line"},
		{"GET / HTTP/1.1\r\nX(: x\r\n\r\n", 400, "bad_header", "malformed header name"},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nextra", 400, "bad_header", "malformed header block"},
		{"GET / HTTP/3\r\nHost: a\r\n\r\n", 505, "bad_version", "HTTP version not supported"},
	} {
		err := ParseRequest([]byte(tc.in), &r)
		if err == nil || err.Status != tc.status || err.Reason != tc.reason || err.Msg != tc.msg {
			t.Errorf("ParseRequest(%q) = %+v, want %d %s %q", tc.in, err, tc.status, tc.reason, tc.msg)
		}
	}
	var many strings.Builder
	many.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for range MaxHeaders {
		many.WriteString("X: y\r\n")
	}
	many.WriteString("\r\n")
	if err := ParseRequest([]byte(many.String()), &r); err != ErrHeaderTooLarge {
		t.Errorf("%d headers: %v", MaxHeaders+1, err)
	}
}

// TestSmugglingCorpus: every request of the shared corpus is refused by the
// codec with the corpus's status and reason: by the head parser, or, for a
// valid head with a malformed chunked body, by the body decoder.
func TestSmugglingCorpus(t *testing.T) {
	for _, tc := range h1test.SmugglingCases() {
		t.Run(tc.Name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.Raw), 4096)
			head, err := ReadHead(br, nil, 4096)
			var r Request
			if err == nil {
				if perr := ParseRequest(head, &r); perr != nil {
					err = perr
				}
			}
			if tc.Body {
				if err != nil {
					t.Fatalf("head refused (%v); the corpus says the body is what is wrong", err)
				}
				w := bufio.NewWriter(io.Discard)
				_, err := CopyChunked(w, br, w.Flush, true)
				if !errors.Is(err, ErrChunked) {
					t.Fatalf("body: %v, want %v", err, ErrChunked)
				}
				return
			}
			var he *Error
			if !errors.As(err, &he) || he.Status != tc.Status || he.Reason != tc.Reason {
				t.Fatalf("refusal %+v, want %d %s", err, tc.Status, tc.Reason)
			}
		})
	}
}

func TestReadHead(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nrest"), 16)
	head, err := ReadHead(br, nil, 100)
	if err != nil || string(head) != "GET / HTTP/1.1\r\nHost: a\r\n\r\n" {
		t.Fatalf("head %q %v", head, err)
	}
	br = bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nHost: "+strings.Repeat("a", 100)+"\r\n\r\n"), 16)
	if _, err := ReadHead(br, nil, 64); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("err %v", err)
	}
	br = bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost"))
	if _, err := ReadHead(br, nil, 64); err != io.EOF {
		t.Fatalf("err %v", err)
	}
	br = bufio.NewReader(strings.NewReader(strings.Repeat("\r\n", 5) + "GET / HTTP/1.1\r\n\r\n"))
	if _, err := ReadHead(br, nil, 64); err == nil || err.(*Error).Reason != "bad_request_line" {
		t.Fatalf("five blank lines: %v", err)
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
	for _, tc := range h1test.SmugglingCases() {
		f.Add([]byte(tc.Raw))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if err := ParseRequest(data, &r); err != nil {
			if err.Status < 400 || err.Reason == "" || err.Msg == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		// What the parser accepts has one unambiguous framing and an
		// origin-form target.
		if r.Chunked && r.ContentLength >= 0 {
			t.Fatal("both chunked and a content length")
		}
		if len(r.Path) == 0 || r.Path[0] != '/' {
			t.Fatalf("accepted path %q", r.Path)
		}
		if r.Minor == 1 && len(r.Host) == 0 {
			t.Fatal("HTTP/1.1 without Host")
		}
	})
}

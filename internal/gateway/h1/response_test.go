package h1

import (
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	var r Response
	if err := ParseResponse([]byte("HTTP/1.1 201 Created\r\nContent-Length: 5\r\ncontent-length: 5\r\nConnection: close\r\nX: y\r\n\r\n"), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != 201 || string(r.Reason) != "Created" || r.ContentLength != 5 || !r.Close || len(r.Headers) != 4 || r.Framing("GET") != FramingLength {
		t.Fatalf("parsed %+v", r)
	}
	if err := ParseResponse([]byte("HTTP/1.0 200\r\nTransfer-Encoding: chunked\r\n\r\n"), &r); err != nil || !r.Close || !r.Chunked || r.Reason != nil {
		t.Fatalf("HTTP/1.0 chunked: %+v %v", r, err)
	}
	for _, tc := range []struct {
		status  int
		chunked bool
		cl      int64
		method  string
		want    Framing
	}{
		{200, false, -1, "GET", FramingEOF},
		{200, true, -1, "GET", FramingChunked},
		{200, false, 3, "HEAD", FramingNone},
		{101, false, -1, "GET", FramingNone},
		{204, false, -1, "GET", FramingNone},
		{304, false, 9, "GET", FramingNone},
	} {
		r := Response{Status: tc.status, Chunked: tc.chunked, ContentLength: tc.cl}
		if got := r.Framing(tc.method); got != tc.want {
			t.Errorf("%+v %s: framing %d, want %d", r, tc.method, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"HTTP/2 200 OK\r\n\r\n", `malformed response from upstream: status line "HTTP/2 200 OK"`},
		{"HTTP/1.2 200 OK\r\n\r\n", `malformed response from upstream: status line "HTTP/1.2 200 OK"`},
		{"HTTP/1.1 2x0 OK\r\n\r\n", `malformed response from upstream: status line "HTTP/1.1 2x0 OK"`},
		{"HTTP/1.1 099 OK\r\n\r\n", "malformed response from upstream: status 99"},
		{"HTTP/1.1 200OK\r\n\r\n", `malformed response from upstream: status line "HTTP/1.1 200OK"`},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "malformed response from upstream: invalid Content-Length"},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed response from upstream: invalid Content-Length"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", `malformed response from upstream: unsupported Transfer-Encoding "gzip"`},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", "malformed response from upstream: both Content-Length and Transfer-Encoding"},
		{"HTTP/1.1 200 OK\r\n X: y\r\n\r\n", `malformed response from upstream: header line " X: y"`},
		{"HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", `malformed response from upstream: control character in header "X"`},
		{"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "malformed response from upstream: header line"},
		{"HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", MaxHeaders+1) + "\r\n", "malformed response from upstream: more than 128 headers"},
	} {
		if err := ParseResponse([]byte(tc.in), &r); err == nil || err.Error() != tc.msg {
			t.Errorf("ParseResponse(%q) = %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 101 Switching\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Response
		if err := ParseResponse(data, &r); err != nil {
			return
		}
		if r.Status < 100 || r.Status > 999 || (r.Chunked && r.ContentLength >= 0) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

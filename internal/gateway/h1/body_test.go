package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCopyChunked(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		encode  bool
		n       int64
		err     string
	}{
		{"3\r\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", true, 3, ""},
		{"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", true, 5, ""},
		{"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde", false, 5, ""},
		{"A\r\n0123456789\r\n0\r\n\r\n", "a\r\n0123456789\r\n0\r\n\r\n", true, 10, ""},
		{"zz\r\n", "", true, 0, "invalid chunked encoding: invalid chunk size \"zz\""},
		{"3\nabc\r\n", "", true, 0, "invalid chunked encoding: chunk size line not ended by CRLF"},
		{"3\r\nabcdef\r\n", "3\r\nabc", true, 3, "invalid chunked encoding: chunk data not followed by CRLF"},
		{"fffffffffffffffff1\r\n", "", true, 0, "invalid chunked encoding: chunk size too large"},
		{"3 x\r\n", "", true, 0, "invalid chunked encoding: invalid chunk size \"3 x\""},
		{"3;\x01\r\n", "", true, 0, "invalid chunked encoding: control character in chunk extension"},
		{"0\r\n X: y\r\n\r\n", "", true, 0, "invalid chunked encoding: obsolete line folding in trailer"},
		{"0\r\nX: y\n\r\n", "", true, 0, "invalid chunked encoding: trailer line not ended by CRLF"},
		{"0\r\n" + strings.Repeat("X: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n", 300) + "\r\n", "", true, 0, "invalid chunked encoding: trailer too large"},
		{"5\r\nab", "5\r\nab", true, 2, "unexpected EOF"},
	} {
		var out strings.Builder
		bw := bufio.NewWriter(&out)
		n, err := CopyChunked(bw, bufio.NewReader(strings.NewReader(tc.in)), bw.Flush, tc.encode)
		bw.Flush()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != tc.err || n != tc.n || out.String() != tc.out {
			t.Errorf("CopyChunked(%q) = %d %q, %q; want %d %q, %q", tc.in, n, out.String(), msg, tc.n, tc.out, tc.err)
		}
	}
}

func TestCopyStream(t *testing.T) {
	var out strings.Builder
	bw := bufio.NewWriter(&out)
	n, err := CopyStream(bw, bufio.NewReader(strings.NewReader("hello world")), -1, true)
	bw.Flush()
	if err != nil || n != 11 || out.String() != "b\r\nhello world\r\n0\r\n\r\n" {
		t.Fatalf("to EOF, chunked: %d %q %v", n, out.String(), err)
	}
	out.Reset()
	n, err = CopyStream(bw, bufio.NewReader(strings.NewReader("hello world")), 5, false)
	bw.Flush()
	if err != nil || n != 5 || out.String() != "hello" {
		t.Fatalf("by length: %d %q %v", n, out.String(), err)
	}
	if _, err := CopyStream(bw, bufio.NewReader(strings.NewReader("hi")), 5, false); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
}

func TestDiscardBody(t *testing.T) {
	for _, tc := range []struct {
		head, body, method string
		n                  int64
		rest               string
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "abcNEXT", "GET", 3, "NEXT"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r\n0\r\n\r\nNEXT", "GET", 3, "NEXT"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "NEXT", "HEAD", 0, "NEXT"},
		{"HTTP/1.1 204 No Content\r\n\r\n", "NEXT", "GET", 0, "NEXT"},
		{"HTTP/1.1 200 OK\r\n\r\n", "until close", "GET", 11, ""},
	} {
		var r Response
		if err := ParseResponse([]byte(tc.head), &r); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(strings.NewReader(tc.body))
		n, err := DiscardBody(br, &r, tc.method)
		rest, _ := io.ReadAll(br)
		if err != nil || n != tc.n || string(rest) != tc.rest {
			t.Errorf("%q %s: %d %v, rest %q", tc.head, tc.method, n, err, rest)
		}
	}
	var r Response
	ParseResponse([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), &r)
	if _, err := DiscardBody(bufio.NewReader(strings.NewReader("abc")), &r, "GET"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
}

func TestAppend(t *testing.T) {
	b := AppendStatusLine(nil, 404, nil)
	b = AppendStatusLine(b, 200, []byte("Fine"))
	b = AppendHeader(b, []byte("A"), []byte("b"))
	b = AppendHeaderString(b, "C", "d")
	b = AppendContentLength(b, 42)
	if want := "HTTP/1.1 404 Not Found\r\nHTTP/1.1 200 Fine\r\nA: b\r\nC: d\r\nContent-Length: 42\r\n"; string(b) != want {
		t.Fatalf("%q", b)
	}
}

func FuzzCopyChunked(f *testing.F) {
	f.Add([]byte("3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("a;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("zz\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out strings.Builder
		bw := bufio.NewWriter(&out)
		n, err := CopyChunked(bw, bufio.NewReader(strings.NewReader(string(data))), bw.Flush, true)
		if err != nil {
			return
		}
		bw.Flush()
		// Re-encoded output decodes to the same number of bytes.
		var again strings.Builder
		bw2 := bufio.NewWriter(&again)
		m, err := CopyChunked(bw2, bufio.NewReader(strings.NewReader(out.String())), bw2.Flush, true)
		bw2.Flush()
		if err != nil || m != n || again.String() != out.String() {
			t.Fatalf("re-encoded body: %d vs %d bytes, %v", m, n, err)
		}
	})
}

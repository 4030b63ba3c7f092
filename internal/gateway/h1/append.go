package h1

import (
	"net/http"
	"strconv"
)

// AppendStatusLine appends "HTTP/1.1 status reason\r\n", with the
// standard reason phrase when reason is empty.
func AppendStatusLine(b []byte, status int, reason []byte) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if len(reason) > 0 {
		return append(append(b, reason...), "\r\n"...)
	}
	return append(append(b, http.StatusText(status)...), "\r\n"...)
}

// AppendHeader appends "name: value\r\n".
func AppendHeader(b, name, value []byte) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// AppendHeaderString is [AppendHeader] for strings.
func AppendHeaderString(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// AppendContentLength appends "Content-Length: n\r\n".
func AppendContentLength(b []byte, n int64) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\r\n"...)
}

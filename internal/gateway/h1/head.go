package h1

import (
	"bufio"
	"bytes"
	"errors"
)

// MaxHeaders bounds the number of header fields in a head.
const MaxHeaders = 128

// Header is one header field; both slices point into the head buffer.
type Header struct {
	Name, Value []byte
}

// ReadHead reads a message head (start line and header fields, up to the
// empty line) into buf[:0], bounded by max bytes, and returns it. Empty
// lines before the start line are skipped (RFC 9112 section 2.2), at most
// four. A head over max is [ErrHeaderTooLarge]; an end of input before the
// empty line is the reader's error (io.EOF).
func ReadHead(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	lineStart, skipped := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return buf, ErrHeaderTooLarge
		}
		buf = append(buf, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return buf, err
		}
		if l := buf[lineStart:]; string(l) == "\r\n" || string(l) == "\n" {
			if lineStart > 0 {
				return buf, nil
			}
			if skipped++; skipped > 4 {
				return buf, BadRequest("bad_request_line", "malformed request line")
			}
			buf = buf[:0]
			continue
		}
		lineStart = len(buf)
	}
}

// nextLine splits off one line ending in CRLF or LF. It returns nil for a
// line with a bare CR or without an end.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, rest
	}
	return line, rest
}

// validValue reports whether a field value has no control character but
// HTAB (RFC 9110 section 5.5).
func validValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"time"
)

// The TLS load's side of an HTTP/1.1 exchange: it sends fixed requests and
// reads only as much of the answer as it must to stay in step.

// exchange writes one request on a keep-alive connection and reads the
// whole response. Any complete response below 500 counts: a 403 from a
// route check is as much work for the server as a 200.
func exchange(c net.Conn, br *bufio.Reader, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	status, err := readResponse(br)
	if err != nil {
		return err
	}
	if status >= 500 {
		return fmt.Errorf("status %d", status)
	}
	return nil
}

// readResponse reads one response to a GET, its head and its whole body
// (by Content-Length or chunked framing), and returns its status. It is
// the load generator's cheap stand-in for http.ReadResponse: no header
// map, no allocation for a response with a length.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("reading the status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 200 {
		return 0, fmt.Errorf("unexpected status line: %q", line)
	}
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("reading the response head: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("malformed header line: %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, fmt.Errorf("bad Content-Length: %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	switch {
	case status == 204 || status == 304:
	case chunked:
		if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
			return 0, fmt.Errorf("reading the chunked body: %w", err)
		}
		// The chunked reader stops after the last chunk: the trailer
		// section, up to its empty line, is left.
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, fmt.Errorf("reading the trailer: %w", err)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return 0, fmt.Errorf("reading the body: %w", err)
		}
	default:
		return 0, errors.New("a keep-alive response without Content-Length or chunked framing")
	}
	return status, nil
}

// exchangeClose writes a Connection: close request and reads to the end
// of the connection, checking only the status line: the cheapest complete
// exchange for the load generator.
func exchangeClose(c net.Conn, buf, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadAtLeast(c, buf, 12); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 ")) || buf[9] < '1' || buf[9] > '5' {
		return fmt.Errorf("not an HTTP/1.1 response: %q", buf)
	}
	if buf[9] == '5' {
		return fmt.Errorf("status %s", buf[9:12])
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	return nil
}

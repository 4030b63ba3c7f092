package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// ServeUpstream serves the upstream of the proxying benchmark (`certgate
// bench upstream`) on listen until ctx ends: a keep-alive HTTP/1.1 server
// that answers every request with the same 200 "ok\n" (Content-Length 3),
// reading request heads and Content-Length bodies and nothing else (a
// chunked request body is answered 501 and the connection closed). It is
// written for as little CPU per request as possible, so that the load
// generator and the upstream sharing one core load the proxy under test,
// not themselves. ready is called with the bound address once it listens.
func ServeUpstream(ctx context.Context, listen string, ready func(addr string)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closeAll := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	ready(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			closeAll()
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("upstream: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveUpstreamConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

var (
	upstreamOK       = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")
	upstreamChunked  = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	upstreamBadFrame = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// serveUpstreamConn answers the requests of one connection until it ends.
func serveUpstreamConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		length, chunked, closeAfter, err := readRequestHead(br)
		switch {
		case err != nil:
			if !errors.Is(err, io.EOF) {
				c.Write(upstreamBadFrame)
			}
			return
		case chunked:
			c.Write(upstreamChunked)
			return
		}
		if length > 0 {
			if _, err := br.Discard(int(length)); err != nil {
				return
			}
		}
		if _, err := c.Write(upstreamOK); err != nil || closeAfter {
			return
		}
	}
}

// readRequestHead reads one request head and returns its body framing and
// whether the client asked to close. It ends with io.EOF at a clean end of
// the connection.
func readRequestHead(br *bufio.Reader) (length int64, chunked, closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return 0, false, false, io.EOF
		}
		return 0, false, false, fmt.Errorf("reading the request line: %w", err)
	}
	if !bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte(" HTTP/1.1")) {
		closeAfter = true // HTTP/1.0: no keep-alive unless asked, which is not worth supporting here
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, fmt.Errorf("reading the request head: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return length, chunked, closeAfter, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = closeAfter || bytes.EqualFold(value, []byte("close"))
		}
	}
}

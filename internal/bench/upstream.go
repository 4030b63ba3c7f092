package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/certgate/certgate/internal/gateway/h1"
)

// ServeUpstream serves the upstream of the proxying benchmark (`certgate
// bench upstream`) on listen until ctx ends: a keep-alive HTTP/1.1 server
// that answers every request with the same 200 "ok\n" (Content-Length 3),
// reading request heads and Content-Length bodies and nothing else (a
// chunked request body is answered 501, a malformed request 400, and the
// connection closed). It is
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
// Requests are parsed by the gateway's codec (internal/gateway/h1), as
// strictly as the gateway parses its clients'.
func serveUpstreamConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	head := make([]byte, 0, 4<<10)
	var req h1.Request
	for {
		var err error
		if head, err = h1.ReadHead(br, head, maxHead); err != nil {
			if len(head) > 0 || !errors.Is(err, io.EOF) {
				c.Write(upstreamBadFrame)
			}
			return
		}
		if perr := h1.ParseRequest(head, &req); perr != nil {
			if perr.Status == http.StatusNotImplemented {
				c.Write(upstreamChunked)
			} else {
				c.Write(upstreamBadFrame)
			}
			return
		}
		if req.Chunked {
			c.Write(upstreamChunked)
			return
		}
		if req.ContentLength > 0 {
			if _, err := br.Discard(int(req.ContentLength)); err != nil {
				return
			}
		}
		if _, err := c.Write(upstreamOK); err != nil || req.Close {
			return
		}
	}
}

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/certgate/certgate/internal/gateway/h1"
)

// The bare baseline (`certgate bench baseline --bare`): crypto/tls with
// RequireAndVerifyClientCert and nothing above it but a minimal HTTP/1.1
// responder, so that a handshake costs what crypto/tls costs and no more.
// It is the strongest Go peer for handshakes: no net/http, no routing, no
// log. Every request gets the same small 403 (as the gateway answers a
// path no route allows).

var (
	bareAnswer      = []byte("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nforbidden\n")
	bareAnswerClose = []byte("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nforbidden\n")
)

// serveBare accepts on ln with tc until ctx ends.
func serveBare(ctx context.Context, ln net.Listener, tc *tls.Config) error {
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
	for {
		c, err := ln.Accept()
		if err != nil {
			closeAll()
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("baseline: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveBareConn(tls.Server(c, tc))
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

// serveBareConn answers the requests of one connection until it ends or
// asks to close. A request body is not read: the load sends none.
func serveBareConn(c *tls.Conn) {
	defer c.Close()
	if c.Handshake() != nil {
		return
	}
	br := bufio.NewReaderSize(c, 4<<10)
	head := make([]byte, 0, 1<<10)
	var req h1.Request
	for {
		var err error
		if head, err = h1.ReadHead(br, head, maxHead); err != nil {
			if len(head) > 0 || !errors.Is(err, io.EOF) {
				c.Write(upstreamBadFrame)
			}
			return
		}
		if perr := h1.ParseRequest(head, &req); perr != nil || req.HasBody() {
			c.Write(upstreamBadFrame)
			return
		}
		if req.Close {
			c.Write(bareAnswerClose)
			return
		}
		if _, err := c.Write(bareAnswer); err != nil {
			return
		}
	}
}

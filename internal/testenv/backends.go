package testenv

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address nothing listens on now, for a
// process that must be told its address before it listens (certgate init
// writes it into certgate.yaml; a child process is given --listen).
//
// The port is taken below the kernel's ephemeral range: a port from that
// range, closed and handed out, is taken back by the next outgoing
// connection or ":0" listener of any process often enough that a loaded
// CI run saw "bind: address already in use" twice in one run (the load
// tests open thousands of connections). Ports below the range are only
// ever given out by this function: random ones, never twice in a process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := freePortRange()
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if freeGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // a service listens there, or another test binary's
		}
		ln.Close()
		freeGiven[port] = true
		return ln.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// freePortRange is [lo, hi): the 12,000 ports below the ephemeral range
// (net.ipv4.ip_local_port_range, 32768 by default), or 20000-32768 when it
// cannot be read or leaves no room.
func freePortRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil && first > 11000 {
			hi = first
		}
	}
	lo = max(hi-12000, 10000)
	return lo, hi
}

// Upstream serves plain HTTP until the test ends and returns its URL. It
// answers "hello IDENTITY\n" with the identity the gateway forwarded in
// identityHeader, and echoes the frames of a WebSocket upgrade as they
// come.
func Upstream(t testing.TB, identityHeader string) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw)
			return
		}
		fmt.Fprintf(w, "hello %s\n", r.Header.Get(identityHeader))
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// EchoBackend serves TCP on 127.0.0.1 until the test ends, echoing every
// connection's bytes back, and returns its address: the backend of a TCP
// route.
func EchoBackend(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// Link is a TCP relay to a target that a test can cut (every open
// connection closed, new ones refused) and restore: the network between a
// gateway and its server.
type Link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

// NewLink relays 127.0.0.1:PORT to target until the test ends.
func NewLink(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); l.SetDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.relay(c)
		}
	}()
	return l
}

// URL is https://ADDR of the link's end.
func (l *Link) URL() string { return "https://" + l.ln.Addr().String() }

func (l *Link) relay(c net.Conn) {
	b, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	l.conns[c], l.conns[b] = struct{}{}, struct{}{}
	l.mu.Unlock()
	go func() { io.Copy(b, c); b.Close(); c.Close() }()
	io.Copy(c, b)
	c.Close()
	b.Close()
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, b)
	l.mu.Unlock()
}

// SetDown cuts the link (closing every relayed connection) or restores it.
func (l *Link) SetDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
	}
}

// Addr is the host:port of the link's end.
func (l *Link) Addr() string { return l.ln.Addr().String() }

package gateway

import (
	"context"
	"net"
	"time"
)

// TCP keep-alive of the gateway's client connections: Go's defaults for
// an accepted connection (probes after 15 s idle, every 15 s, 9 of them),
// so that a client that vanished without a FIN or a reset (a host gone,
// a NAT entry dropped) is found and its connection closed, parked ones
// included.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

// listen listens on addr for client connections. Where the accepted
// sockets inherit the listening socket's keep-alive options (Linux,
// listen_linux.go), they are set once on the listening socket instead of
// by four setsockopt system calls on every accepted connection (Go's
// default): the same keep-alive, four of the ~19 system calls of a short
// connection fewer (docs/benchmarks.md, resumed handshakes).
func listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
	}}
	if inheritKeepAlive {
		lc.KeepAlive = -1 // not again on each accepted connection
		lc.KeepAliveConfig = net.KeepAliveConfig{}
		lc.Control = setListenerKeepAlive
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

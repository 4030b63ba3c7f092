//go:build linux

package gateway

import (
	"syscall"
)

// inheritKeepAlive: on Linux an accepted TCP socket is a copy of its
// listening socket's, SO_KEEPALIVE and TCP_KEEPIDLE, TCP_KEEPINTVL and
// TCP_KEEPCNT included (the kernel arms the keep-alive timer of a child
// whose listener has SO_KEEPALIVE: tcp_create_openreq_child).
// TestListenerKeepAliveInherited checks it on an accepted connection.
const inheritKeepAlive = true

// setListenerKeepAlive sets the keep-alive options on a listening socket
// before it listens (net.ListenConfig.Control).
func setListenerKeepAlive(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range [...]struct{ level, opt, v int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle.Seconds())},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval.Seconds())},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		} {
			if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

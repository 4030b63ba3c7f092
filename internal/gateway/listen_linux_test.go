//go:build linux

package gateway

import (
	"net"
	"syscall"
	"testing"
)

// keepAliveOptions reads an accepted connection's keep-alive options.
func keepAliveOptions(t *testing.T, c net.Conn) [4]int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got [4]int
	var gerr error
	rc.Control(func(fd uintptr) {
		for i, o := range [...]struct{ level, opt int }{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
		} {
			if got[i], gerr = syscall.GetsockoptInt(int(fd), o.level, o.opt); gerr != nil {
				return
			}
		}
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return got
}

func acceptOne(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestListenerKeepAliveInherited: a connection accepted from the
// gateway's listener, whose keep-alive options were set once on the
// listening socket, has the keep-alive of one accepted from net.Listen
// (set by Go on each connection).
func TestListenerKeepAliveInherited(t *testing.T) {
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := keepAliveOptions(t, acceptOne(t, ln))
	want := [4]int{1, int(keepAliveIdle.Seconds()), int(keepAliveInterval.Seconds()), keepAliveCount}
	if got != want {
		t.Fatalf("accepted connection: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = %v, want %v", got, want)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if goDefault := keepAliveOptions(t, acceptOne(t, plain)); goDefault != got {
		t.Fatalf("keep-alive %v, net.Listen's accepted connections have %v", got, goDefault)
	}
}

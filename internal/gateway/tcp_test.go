package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

func TestTCPRoute(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	e := newEnv(t, withYAML(`
tcp_routes:
  - name: echo
    listen: 127.0.0.1:0
    backend: `+ln.Addr().String()+`
    allow: ["spiffe://example.org/svc/db-client"]
`))
	addr := e.gw.TCPAddr("echo").String()
	dial := func(leaf *testca.Leaf) *tls.Conn {
		tc := e.tlsConfig(leaf)
		c, err := tls.Dial("tcp", addr, tc)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	c := dial(e.ca.Issue(t, withSvc("db-client")))
	msg := []byte("\x00\x01raw bytes, not HTTP\xff")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo %q %v", got, err)
	}
	c.Close()
	l := e.waitLog(func(m map[string]any) bool { return m["kind"] == "tcp" })
	if l["decision"] != "allow" || l["route"] != "echo" || l["bytes_in"] != float64(len(msg)) || l["bytes_out"] != float64(len(msg)) {
		t.Fatalf("log %v", l)
	}

	e.logBuf.Reset()
	c = dial(e.ca.Issue(t, withSvc("other")))
	c.Write([]byte("hello"))
	if n, err := c.Read(got); err == nil {
		t.Fatalf("refused identity read %q", got[:n])
	}
	l = e.waitLog(func(m map[string]any) bool { return m["kind"] == "tcp" })
	if l["decision"] != "deny" || l["reason"] != "identity_not_allowed" || l["identity"] != "spiffe://example.org/svc/other" {
		t.Fatalf("log %v", l)
	}
	if accepted.Load() != 1 {
		t.Fatalf("backend accepted %d connections", accepted.Load())
	}
}

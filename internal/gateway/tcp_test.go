package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
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

// TestTCPRefusalsAsClientsShowThem: a TCP route has no HTTP to answer in,
// so it refuses in the TLS handshake. For each refusal kind, what Go's
// crypto/tls and openssl s_client show a person: a TLS 1.3 client
// without a certificate gets certificate_required, every refused
// certificate bad_certificate (the only alert crypto/tls sends from its
// verification hook), each after the client finished its side of the
// handshake, so at the first read; an identity the route does not allow
// completes the handshake and the connection is closed without a byte.
// The backend never sees a connection, and the access log has the reason.
func TestTCPRefusalsAsClientsShowThem(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
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
			c.Close()
		}
	}()
	e := newEnv(t, withYAML(`
tcp_routes:
  - name: db
    listen: 127.0.0.1:0
    backend: `+ln.Addr().String()+`
    allow: ["spiffe://example.org/svc/db-client"]
`))
	addr := e.gw.TCPAddr("db").String()
	now := e.clock.Now()
	revoked := e.ca.Issue(t, withSvc("db-client"))
	e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(revoked.Cert)))
	const (
		goRequired = "remote error: tls: certificate required"
		goBad      = "remote error: tls: bad certificate"
		sslBad     = "sslv3 alert bad certificate"
	)
	cases := []struct {
		reason         string
		leaf           *testca.Leaf
		goErr, sslShow string
	}{
		{"no_certificate", nil, goRequired, "tlsv13 alert certificate required"},
		{"unknown_authority", testca.New(t, td).Issue(t, withSvc("db-client")), goBad, sslBad},
		{"expired", e.ca.Issue(t, withSvc("db-client"), testca.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))), goBad, sslBad},
		{"not_yet_valid", e.ca.Issue(t, withSvc("db-client"), testca.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour))), goBad, sslBad},
		{"wrong_usage", e.ca.Issue(t, withSvc("db-client"), testca.WithEKU(x509.ExtKeyUsageServerAuth)), goBad, sslBad},
		{"bad_identity", e.ca.Issue(t, testca.WithID("spiffe://other.org/svc/db-client")), goBad, sslBad},
		{"revoked", revoked, goBad, sslBad},
		{"identity_not_allowed", e.ca.Issue(t, withSvc("other")), "EOF", "CONNECTED"},
	}
	bundle := e.dir + "/bundle.pem"
	for i, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			// Go: Dial returns (TLS 1.3: the client's side is done), the
			// first read says why.
			c, err := tls.Dial("tcp", addr, e.tlsConfig(tc.leaf))
			if err != nil {
				t.Fatalf("go: dial: %v", err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("hello"))
			n, err := c.Read(make([]byte, 16))
			c.Close()
			if n != 0 || err == nil || err.Error() != tc.goErr {
				t.Errorf("go: read %d %v, want %q", n, err, tc.goErr)
			}
			args := []string{"s_client", "-connect", addr, "-servername", "localhost", "-CAfile", bundle, "-ign_eof"}
			if tc.leaf != nil {
				cert, key := tc.leaf.WriteFiles(t, t.TempDir(), fmt.Sprintf("c%d", i))
				args = append(args, "-cert", cert, "-key", key)
			}
			cmd := exec.Command(openssl, args...)
			cmd.Stdin = strings.NewReader("hello\n")
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tc.sslShow) || strings.Contains(string(out), "hello") {
				t.Errorf("openssl s_client: want %q in\n%s", tc.sslShow, out)
			}
			l := e.waitLog(func(m map[string]any) bool { return m["reason"] == tc.reason })
			if l["decision"] != "deny" {
				t.Errorf("log %v", l)
			}
		})
	}
	if accepted.Load() != 0 {
		t.Fatalf("the backend accepted %d connections", accepted.Load())
	}
}

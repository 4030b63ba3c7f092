package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// TestRefusalKeyIsPerConnection pins what the shared answering config
// relies on in crypto/tls (refusal.go): the certificate list that
// VerifyConnection and WrapSession see is the one Conn.ConnectionState
// returns after the handshake, and each connection has its own, even
// when connections resuming with the same certificate share the
// *x509.Certificate (crypto/tls's certificate cache).
func TestRefusalKeyIsPerConnection(t *testing.T) {
	ca := testca.New(t, td)
	srvLeaf := ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw1"))
	var mu sync.Mutex
	seenVerify := map[**x509.Certificate]*x509.Certificate{}
	seenWrap := map[**x509.Certificate]bool{}
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{srvLeaf.TLSCertificate()},
		ClientAuth:   tls.RequestClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			mu.Lock()
			seenVerify[&cs.PeerCertificates[0]] = cs.PeerCertificates[0]
			mu.Unlock()
			return nil
		},
	}
	srvCfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		mu.Lock()
		seenWrap[&cs.PeerCertificates[0]] = true
		mu.Unlock()
		return srvCfg.EncryptTicket(cs, ss)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan *tls.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.Handshake() == nil {
				conns <- tc
			}
		}
	}()
	leaf := ca.Issue(t, withSvc("a"))
	cli := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{leaf.TLSCertificate()},
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	dial := func() (*tls.Conn, *tls.Conn) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), cli)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// The ticket arrives after the handshake: read until it did.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		c.Read(make([]byte, 1))
		select {
		case s := <-conns:
			t.Cleanup(func() { s.Close() })
			return c, s
		case <-time.After(10 * time.Second):
			t.Fatal("no server connection")
		}
		return nil, nil
	}
	_, full := dial()
	c1, s1 := dial()
	c2, s2 := dial()
	if !c1.ConnectionState().DidResume || !c2.ConnectionState().DidResume {
		t.Fatal("the connections after the first did not resume")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range []*tls.Conn{full, s1, s2} {
		certs := s.ConnectionState().PeerCertificates
		if seenVerify[&certs[0]] != certs[0] || !seenWrap[&certs[0]] {
			t.Fatalf("connection %d: its certificate list after the handshake is not the one VerifyConnection and WrapSession saw", i)
		}
	}
	a, b := s1.ConnectionState().PeerCertificates, s2.ConnectionState().PeerCertificates
	if &a[0] == &b[0] {
		t.Fatal("two connections share a certificate list")
	}
	if a[0] != b[0] {
		t.Log("resumed connections no longer share the *x509.Certificate; the key would still be right")
	}
}

// corruptFinished makes the client's Finished fail the server's record
// check: the last byte of the client's second flight (certificate,
// CertificateVerify, Finished) is flipped, so the server has verified the
// certificate when the handshake fails.
type corruptFinished struct {
	net.Conn
	writes int
}

func (c *corruptFinished) Write(p []byte) (int, error) {
	c.writes++
	if c.writes > 1 && len(p) >= 58 {
		q := append([]byte(nil), p...)
		q[len(q)-1] ^= 1
		p = q
	}
	return c.Conn.Write(p)
}

// TestRefusalsAreForgotten: whatever way the handshake of the HTTP
// listener ends, the gateway keeps no refusal for it.
func TestRefusalsAreForgotten(t *testing.T) {
	e := newEnv(t, quiet())
	now := e.clock.Now()
	ok := e.ca.Issue(t, withSvc("a"))
	revoked := e.ca.Issue(t, withSvc("revoked"))
	e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(revoked.Cert)))
	other := testca.New(t, td).Issue(t, withSvc("a"))

	for _, h2 := range []bool{false, true} {
		e.refusedWith(revoked, h2, ReasonRevoked)
		e.refusedWith(other, h2, ReasonUnknownAuthority)
		e.refusedWith(nil, h2, ReasonNoCertificate)
	}
	for _, leaf := range []*testca.Leaf{revoked, nil} {
		if status, err := e.handshakeRefused(leaf, tls.VersionTLS12); err != nil || status == 200 {
			t.Fatalf("TLS 1.2: %d %v", status, err)
		}
	}
	// Accepted and resumed connections record nothing.
	cfg := e.tlsConfig(ok)
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	s := &h1Sender{e: e, tc: cfg}
	for range 2 {
		if status, _, err := s.do("/x"); err != nil || status != 200 {
			t.Fatalf("%d %v", status, err)
		}
		s.close()
	}
	// A refused certificate whose handshake then fails: the client's
	// Finished does not verify.
	recorded := e.gw.refusals.recorded.Load()
	for range 3 {
		raw, err := net.DialTimeout("tcp", e.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := e.tlsConfig(revoked)
		tc.NextProtos = []string{"http/1.1"}
		c := tls.Client(&corruptFinished{Conn: raw}, tc)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err == nil {
			// TLS 1.3: the client is done before the server read its
			// Finished; the server's alert ends the connection.
			if _, err := c.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")); err == nil {
				if n, err := c.Read(make([]byte, 512)); err == nil {
					t.Fatalf("read %d bytes of an answer after a corrupted Finished", n)
				}
			}
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.gw.refusals.recorded.Load() < recorded+3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.gw.refusals.recorded.Load() - recorded; got != 3 {
		t.Fatalf("%d refusals recorded for 3 revoked handshakes with a bad Finished", got)
	}
	// The accept goroutines may still be finishing their last handshake.
	for e.gw.refusals.len() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.gw.refusals.len(); n != 0 {
		t.Fatalf("%d refusals kept after every handshake ended", n)
	}
}

package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
	"github.com/certgate/certgate/internal/testca"
)

// handshakeRefused connects with leaf (nil: none) at most at maxVersion
// (0: any), sends one HTTP/1.1 request and returns the answer's status,
// or the error the client saw.
func (e *env) handshakeRefused(leaf *testca.Leaf, maxVersion uint16) (int, error) {
	e.t.Helper()
	tc := e.tlsConfig(leaf)
	tc.MaxVersion = maxVersion
	tc.NextProtos = []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr(), tc)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestHandshakeRefusals: each refused certificate completes the handshake
// and every request on the connection, HTTP/1.1 or HTTP/2, TLS 1.3 or
// 1.2, is answered 401 (no certificate) or 403 with a JSON body naming
// the reason, what to do and the failed check, and never forwarded; the
// access log keeps the exact reason, for the handshake and each request;
// the session of a refused connection is never resumed.
func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	other := testca.New(t, td)
	revoked := e.ca.Issue(t, withSvc("revoked"))
	e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(revoked.Cert)))
	for _, tc := range []struct {
		name   string
		leaf   *testca.Leaf
		reason Reason
		error  string
	}{
		{"no certificate", nil, ReasonNoCertificate, "no client certificate"},
		{"another CA", other.Issue(t, withSvc("a")), ReasonUnknownAuthority, `x509: certificate signed by unknown authority (possibly because of "x509: ECDSA verification failure" while trying to verify candidate authority certificate "example.org test root")`},
		{"expired", e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))), ReasonExpired,
			fmt.Sprintf("certificate expired at %s, now is %s", now.Add(-time.Hour).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))},
		{"not yet valid", e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour))), ReasonNotYetValid,
			fmt.Sprintf("certificate is valid from %s, now is %s", now.Add(time.Hour).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))},
		{"serverAuth only", e.ca.Issue(t, withSvc("a"), testca.WithEKU(x509.ExtKeyUsageServerAuth)), ReasonWrongUsage, "certificate lacks the clientAuth extended key usage"},
		{"revoked", revoked, ReasonRevoked, "certificate serial " + revocation.SerialOf(revoked.Cert) + " is revoked"},
		{"other trust domain", e.ca.Issue(t, testca.WithID("spiffe://other.org/svc/a")), ReasonBadIdentity, `SPIFFE ID outside the trust domain "example.org": spiffe://other.org/svc/a`},
		{"no SPIFFE ID", e.ca.Issue(t, testca.WithoutID(), testca.WithCN("x")), ReasonBadIdentity, "certificate has no SPIFFE ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.logBuf.Reset()
			for _, h2 := range []bool{false, true} {
				body := e.refusedWith(tc.leaf, h2, tc.reason)
				if body["detail"] != tc.error || body["error"].(map[string]any)["message"] != refusalAdvice[tc.reason] {
					t.Fatalf("h2=%v body %v", h2, body)
				}
				if tc.leaf != nil && body["certificate"].(map[string]any)["serial"] != revocation.SerialOf(tc.leaf.Cert) {
					t.Fatalf("body %v", body)
				}
			}
			if status, err := e.handshakeRefused(tc.leaf, tls.VersionTLS12); err != nil || status != refusalStatus(tc.reason) {
				t.Fatalf("TLS 1.2: %d %v", status, err)
			}
			l := e.waitLog(func(m map[string]any) bool { return m["kind"] == "handshake" })
			if l["reason"] != tc.reason.String() || l["decision"] != "deny" || l["error"] != "gateway: client certificate refused ("+tc.reason.String()+"): "+tc.error {
				t.Fatalf("log %v\nwant reason %s error %q", l, tc.reason, tc.error)
			}
			if tc.leaf != nil && l["serial"] != revocation.SerialOf(tc.leaf.Cert) {
				t.Fatalf("log serial %v", l["serial"])
			}
			r := e.waitLog(func(m map[string]any) bool { return m["kind"] == "http" })
			if r["reason"] != tc.reason.String() || r["decision"] != "deny" || r["status"] != float64(refusalStatus(tc.reason)) || r["path"] != "/x" {
				t.Fatalf("request log %v", r)
			}
		})
	}
	if e.hits.Load() != 0 {
		t.Fatalf("upstream saw %d requests", e.hits.Load())
	}
	// A refused connection's session is not resumed: the next connection
	// is verified in full (and, unrevoked, served).
	cfg := e.tlsConfig(revoked)
	cfg.NextProtos = []string{"http/1.1"}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	s := &h1Sender{e: e, tc: cfg}
	if status, _, err := s.do("/x"); err != nil || status != 403 {
		t.Fatalf("revoked: %d %v", status, err)
	}
	s.close()
	e.revoked.Update(revocation.NewSet(2, now))
	if status, _, err := s.do("/x"); err != nil || status != 200 || s.c.ConnectionState().DidResume {
		t.Fatalf("after unrevoking: %d %v resumed=%v", status, err, s.c != nil && s.c.ConnectionState().DidResume)
	}
	s.close()
}

func TestTLS12Works(t *testing.T) {
	e := newEnv(t)
	tc := e.tlsConfig(e.ca.Issue(t, withSvc("a")))
	tc.MaxVersion = tls.VersionTLS12
	c, err := tls.Dial("tcp", e.addr(), tc)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	tc.MaxVersion = tls.VersionTLS11
	tc.MinVersion = tls.VersionTLS10
	if _, err := tls.Dial("tcp", e.addr(), tc); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func TestResumptionRechecksRevocationAndExpiry(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			e := newEnv(t)
			now := e.clock.Now()
			leaf := e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-time.Hour), now.Add(time.Hour)))
			cfg := e.tlsConfig(leaf)
			cfg.MaxVersion = version
			cfg.NextProtos = []string{"http/1.1"}
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			connect := func() (bool, error) {
				c, err := tls.Dial("tcp", e.addr(), cfg)
				if err != nil {
					return false, err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
				b := make([]byte, 12)
				if _, err := io.ReadFull(c, b); err != nil {
					return c.ConnectionState().DidResume, err
				}
				if string(b) != "HTTP/1.1 200" {
					return false, fmt.Errorf("response %q", b)
				}
				return c.ConnectionState().DidResume, nil
			}
			if resumed, err := connect(); err != nil || resumed {
				t.Fatalf("first connection: resumed=%v %v", resumed, err)
			}
			if resumed, err := connect(); err != nil || !resumed {
				t.Fatalf("second connection: resumed=%v %v", resumed, err)
			}
			e.waitLog(func(m map[string]any) bool { return m["resumed"] == true && m["status"] == float64(200) })

			// Revoked: the resumed handshake is refused.
			e.revoked.Update(revocation.NewSet(1, now, revocation.SerialOf(leaf.Cert)))
			if _, err := connect(); err == nil {
				t.Fatal("revoked certificate resumed")
			}
			e.waitLog(func(m map[string]any) bool { return m["reason"] == "revoked" })
			e.revoked.Update(revocation.NewSet(2, now))
			// (A TLS 1.2 client drops the session the refusal ended.)
			if _, err := connect(); err != nil {
				t.Fatalf("after unrevoke: %v", err)
			}
			if resumed, err := connect(); err != nil || !resumed {
				t.Fatalf("after unrevoke: resumed=%v %v", resumed, err)
			}
			// Past the certificate's expiry no session resumes.
			e.clock.Advance(2 * time.Hour)
			if _, err := connect(); err == nil {
				t.Fatal("expired certificate resumed")
			}
			e.waitLog(func(m map[string]any) bool { return m["reason"] == "expired" })
		})
	}
}

func TestConnectionClosedAtCertificateExpiry(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	leaf := e.ca.Issue(t, withSvc("a"), testca.WithValidity(now.Add(-time.Hour), now.Add(time.Minute)))
	for _, h2 := range []bool{false, true} {
		c := e.client(leaf, h2)
		resp, err := c.Get(e.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	raw := e.dial(leaf)
	io.WriteString(raw, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	buf := make([]byte, 4096)
	if n, err := raw.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("first response %q %v", buf[:n], err)
	}
	if e.gw.Connections() != 3 {
		t.Fatalf("connections = %d", e.gw.Connections())
	}
	e.clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for e.gw.Connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.gw.Connections(); n != 0 {
		t.Fatalf("%d connections still open after expiry", n)
	}
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := raw.Read(buf); err == nil {
		t.Fatalf("read %q on a connection that should be closed", buf[:n])
	}
}

func TestCloseBySerial(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	c := e.dial(leaf)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	buf := make([]byte, 4096)
	c.Read(buf)
	// A revocation update closes live connections of the revoked serial.
	e.revoked.Update(revocation.NewSet(1, e.clock.Now(), revocation.SerialOf(leaf.Cert)))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection of a revoked certificate still open")
	}
	if n := e.gw.CloseBySerial(revocation.SerialOf(leaf.Cert)); n != 0 {
		t.Fatalf("CloseBySerial closed %d more", n)
	}
}

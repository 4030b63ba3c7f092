package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
)

func withSvc(name string) testca.Option { return testca.WithID("spiffe://example.org/svc/" + name) }

func TestAllowedRequestReachesUpstreamWithIdentity(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("billing"))
	for _, h2 := range []bool{false, true} {
		c := e.client(leaf, h2)
		req, _ := http.NewRequest("POST", e.url("/v1/pay?amount=3"), strings.NewReader("hello"))
		status, body := getJSON(t, c, req)
		if status != 200 {
			t.Fatalf("h2=%v status %d body %v", h2, status, body)
		}
		want := map[string]any{
			"method": "POST", "path": "/v1/pay?amount=3", "host": e.addr(), "body": "hello", "proto": "HTTP/1.1",
			"identity": []any{"spiffe://example.org/svc/billing"}, "serial": leaf.Cert.SerialNumber.Text(16),
		}
		if !reflect.DeepEqual(body, want) {
			t.Fatalf("h2=%v upstream saw %v\nwant %v", h2, body, want)
		}
		l := e.waitLog(func(m map[string]any) bool { return m["path"] == "/v1/pay" && m["tls_version"] == "TLS1.3" })
		for k, v := range map[string]any{
			"kind": "http", "identity": "spiffe://example.org/svc/billing", "method": "POST", "route": "api",
			"decision": "allow", "reason": "allowed", "status": float64(200), "bytes_in": float64(5),
		} {
			if l[k] != v {
				t.Errorf("h2=%v log %s = %v, want %v (entry %v)", h2, k, l[k], v, l)
			}
		}
		e.logBuf.Reset()
	}
}

func TestForbiddenIdentityGets403JSON(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("billing"))
	for _, h2 := range []bool{false, true} {
		resp, err := e.client(leaf, h2).Get(e.url("/admin/users?x=1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `{"error":{"code":"forbidden","message":"this identity is not allowed to make this request"},"identity":"spiffe://example.org/svc/billing","request":{"method":"GET","host":"` + e.addr() + `","path":"/admin/users"}}`
		if resp.StatusCode != 403 || string(b) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("h2=%v: %s %q", h2, resp.Status, b)
		}
	}
	if e.hits.Load() != 0 {
		t.Fatalf("upstream saw %d requests", e.hits.Load())
	}
	l := e.waitLog(func(m map[string]any) bool { return m["status"] == float64(403) })
	if l["decision"] != "deny" || l["reason"] != "identity_not_allowed" || l["route"] != "admin" {
		t.Fatalf("log %v", l)
	}
	// An identity outside every route's rules is also refused.
	other := e.ca.Issue(t, testca.WithID("spiffe://example.org/team/x"))
	resp, err := e.client(other, false).Get(e.url("/v1/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestClientCertHeadersRoundTrip(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("billing"))
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", e.url("/v1/x"), nil)
		// A client trying to pass itself off as an admin.
		req.Header.Set(HeaderIdentity, "spiffe://example.org/admin/alice")
		req.Header.Set(HeaderClientCert, ":AAAA:")
		req.Header.Set(HeaderClientCertChain, ":AAAA:")
		req.Header.Set(HeaderXFCC, "Hash=00;URI=spiffe://example.org/admin/alice")
		req.Header.Set(HeaderSerial, "01")
		req.Header.Add("x-client-identity", "spiffe://example.org/admin/bob")
		if status, _ := getJSON(t, e.client(leaf, h2), req); status != 200 {
			t.Fatalf("status %d", status)
		}
		got := e.lastRequest().Header
		if v := got.Values(HeaderIdentity); len(v) != 1 || v[0] != "spiffe://example.org/svc/billing" {
			t.Fatalf("h2=%v X-Client-Identity = %q", h2, v)
		}
		// RFC 9440: Client-Cert is the DER certificate as a structured
		// field byte sequence; the upstream gets back the exact certificate.
		cc := got.Values(HeaderClientCert)
		if len(cc) != 1 || !strings.HasPrefix(cc[0], ":") || !strings.HasSuffix(cc[0], ":") {
			t.Fatalf("Client-Cert = %q", cc)
		}
		der, err := base64.StdEncoding.DecodeString(strings.Trim(cc[0], ":"))
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := x509.ParseCertificate(der)
		if err != nil || !parsed.Equal(leaf.Cert) {
			t.Fatalf("Client-Cert does not round-trip to the client's certificate: %v", err)
		}
		chain := got.Values(HeaderClientCertChain)
		wantChain := ":" + base64.StdEncoding.EncodeToString(e.ca.Intermediate.Raw) + ":"
		if len(chain) != 1 || chain[0] != wantChain {
			t.Fatalf("Client-Cert-Chain = %q", chain)
		}
		wantXFCC := fmt.Sprintf(`By=spiffe://example.org/gateway/gw1;Hash=%s;Subject="CN=billing";URI=spiffe://example.org/svc/billing`, sha256Hex(leaf.Cert.Raw))
		if x := got.Values(HeaderXFCC); len(x) != 1 || x[0] != wantXFCC {
			t.Fatalf("X-Forwarded-Client-Cert = %q, want %q", x, wantXFCC)
		}
		if s := got.Values(HeaderSerial); len(s) != 1 || s[0] != leaf.Cert.SerialNumber.Text(16) {
			t.Fatalf("serial = %q", s)
		}
		if got.Get("X-Forwarded-Proto") != "https" || got.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Fatalf("forwarding headers %v", got)
		}
	}
}

func TestIdentityHeadersSwitchedOff(t *testing.T) {
	e := newEnv(t, withRoutes(`
routes:
  - name: api
    upstream: UPSTREAM
    allow: ["spiffe://example.org/svc/*"]
    headers: {client_cert: false, client_cert_chain: false, xfcc: false, serial: false}
`))
	req, _ := http.NewRequest("GET", e.url("/x"), nil)
	req.Header.Set(HeaderClientCert, ":AAAA:")
	if status, _ := getJSON(t, e.client(e.ca.Issue(t, withSvc("a")), false), req); status != 200 {
		t.Fatalf("status %d", status)
	}
	h := e.lastRequest().Header
	for _, n := range []string{HeaderClientCert, HeaderClientCertChain, HeaderXFCC, HeaderSerial} {
		if v, ok := h[n]; ok {
			t.Errorf("%s sent upstream: %q", n, v)
		}
	}
	if h.Get(HeaderIdentity) != "spiffe://example.org/svc/a" {
		t.Errorf("identity header %q", h.Get(HeaderIdentity))
	}
}

func TestUpstreamDownIs502(t *testing.T) {
	e := newEnv(t, withRoutes(`
routes:
  - name: down
    upstream: http://127.0.0.1:1
    allow: ["spiffe://example.org/svc/*"]
`))
	leaf := e.ca.Issue(t, withSvc("a"))
	for _, h2 := range []bool{false, true} {
		resp, err := e.client(leaf, h2).Get(e.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 || string(b) != `{"error":{"code":"bad_gateway","message":"upstream unavailable"}}` {
			t.Fatalf("h2=%v %s %s", h2, resp.Status, b)
		}
	}
	l := e.waitLog(func(m map[string]any) bool { return m["status"] == float64(502) })
	if l["reason"] != "upstream_unavailable" || !strings.Contains(l["error"].(string), "connection refused") {
		t.Fatalf("log %v", l)
	}
}

func TestUpstreamTimeoutIs504(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client(e.ca.Issue(t, withSvc("a")), false).Get(e.url("/slow"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.waitLog(func(m map[string]any) bool { return m["reason"] == "upstream_timeout" })
}

func TestKeepAliveReusesConnections(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	c := e.dial(leaf)
	br := bufio.NewReader(c)
	for i := range 5 {
		fmt.Fprintf(c, "GET /n/%d HTTP/1.1\r\nHost: api\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	if e.gw.Connections() != 1 {
		t.Fatalf("gateway tracks %d connections", e.gw.Connections())
	}
}

// TestStalePooledConnectionsAreRetried: when the upstream has closed every
// pooled keep-alive connection (a restart, an idle timeout of its own), a
// request without a body goes through on a fresh connection instead of
// getting 502 from the first stale one, or the second.
func TestStalePooledConnectionsAreRetried(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	// Fill the pool with several idle upstream connections: concurrent
	// requests on separate client connections each take one.
	var conns []*tls.Conn
	for range 4 {
		conns = append(conns, e.dial(leaf))
	}
	send := func(c *tls.Conn, path string) int {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	done := make(chan int, len(conns))
	for i, c := range conns {
		go func() { done <- send(c, fmt.Sprintf("/warm/%d", i)) }()
	}
	for range conns {
		if st := <-done; st != 200 {
			t.Fatalf("warm-up: %d", st)
		}
	}
	e.upstream.CloseClientConnections()
	for i := range 3 {
		if st := send(e.dial(leaf), fmt.Sprintf("/after/%d", i)); st != 200 {
			t.Fatalf("request %d after the upstream closed its connections: %d", i, st)
		}
	}
}

func TestResponseFraming(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	// Upstream ends its body by closing: an HTTP/1.1 client gets it chunked
	// on a connection that stays open.
	c := e.dial(leaf)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /eof HTTP/1.1\r\nHost: api\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "until close" || resp.TransferEncoding[0] != "chunked" || resp.Close {
		t.Fatalf("eof body %q te %v close %v", b, resp.TransferEncoding, resp.Close)
	}
	// 204 has no body; HEAD keeps the Content-Length.
	io.WriteString(c, "GET /status/204 HTTP/1.1\r\nHost: api\r\n\r\nHEAD /x HTTP/1.1\r\nHost: api\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("204: %v %v", resp, err)
	}
	resp, err = http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 200 || resp.ContentLength <= 0 {
		t.Fatalf("HEAD: %+v %v", resp, err)
	}
	// A chunked request body is forwarded; an HTTP/1.0 client gets a
	// close-delimited response.
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"body":"abcde"`) {
		t.Fatalf("chunked upload: %s", b)
	}
	status, closed := e.rawRequest(leaf, "GET /x HTTP/1.0\r\nHost: api\r\n\r\n")
	if status != "200 OK" || !closed {
		t.Fatalf("HTTP/1.0: %s closed=%v", status, closed)
	}
}

func TestSSEArrivesEventByEvent(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("a"))
	for _, h2 := range []bool{false, true} {
		resp, err := e.client(leaf, h2).Get(e.url("/sse"))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		start := time.Now()
		var arrivals []time.Duration
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if strings.HasPrefix(line, "data: ") {
				arrivals = append(arrivals, time.Since(start))
			}
		}
		resp.Body.Close()
		if len(arrivals) != 3 {
			t.Fatalf("h2=%v got %d events", h2, len(arrivals))
		}
		// The upstream waits 200ms between events: each must arrive on
		// its own, not all at the end.
		if arrivals[0] > 150*time.Millisecond || arrivals[1]-arrivals[0] < 100*time.Millisecond {
			t.Fatalf("h2=%v events arrived at %v: buffered", h2, arrivals)
		}
	}
}

func TestHTTP2Negotiated(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client(e.ca.Issue(t, withSvc("a")), true).Get(e.url("/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", resp.Proto)
	}
	_ = tls.VersionTLS13
}

package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/token"
	"github.com/certgate/certgate/internal/wire"
)

const svcID = "spiffe://example.org/svc/billing"

// raw posts body to path and returns the status and the decoded error.
func (e *env) raw(method, path string, body []byte, cert *tls.Certificate) (int, string, string) {
	e.t.Helper()
	tc := &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(data, &eb)
	return resp.StatusCode, eb.Error.Code, eb.Error.Message
}

func (e *env) newToken(id string, ttl time.Duration) string {
	e.t.Helper()
	resp, err := e.client(&e.admin).CreateToken(context.Background(), id, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Token
}

func newCSR(t *testing.T, kt keytype.Type, id string) string {
	t.Helper()
	key, err := keytype.Generate(kt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := csr.Create(key, identity.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, kt := range keytype.All {
		t.Run(string(kt), func(t *testing.T) {
			tokStr := e.newToken(svcID, 0)
			resp, err := e.client(nil).Enroll(ctx, tokStr, newCSR(t, kt, svcID))
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := pemutil.ParseCertificates([]byte(resp.Certificate))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Identity != svcID || leaf[0].URIs[0].String() != svcID || resp.Serial != ca.SerialHex(leaf[0].SerialNumber) {
				t.Fatalf("got %+v", resp)
			}
			rec, err := e.store.GetCertificate(ctx, resp.Serial)
			if err != nil || rec.KeyType != string(kt) || rec.Obtained != store.ObtainedEnroll {
				t.Fatalf("record %+v %v", rec, err)
			}
			tok, _ := token.Parse(tokStr)
			st, err := e.store.GetToken(ctx, tok.ID)
			if err != nil || st.RedeemedAt.IsZero() || st.Serial != resp.Serial {
				t.Fatalf("token after enroll: %+v %v", st, err)
			}
			if got := leaf[0].NotAfter.Sub(e.clock.Now()); got != ca.DefaultClientLifetime {
				t.Fatalf("lifetime %s", got)
			}
		})
	}
}

func TestEnrollBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	read := func(name string) string {
		b, err := os.ReadFile("../csr/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	brokenSig := func() string {
		b, _ := pem.Decode([]byte(newCSR(t, keytype.ECDSAP256, svcID)))
		b.Bytes[len(b.Bytes)-3] ^= 0xff
		return string(pem.EncodeToMemory(b))
	}
	certPEM := string(pemutil.EncodeCertificates(e.root))
	rows := []struct {
		name      string
		body      func(tok string) any // an EnrollRequest or raw []byte
		status    int
		code, msg string
	}{
		{"broken signature", func(tok string) any { return wire.EnrollRequest{Token: tok, CSR: brokenSig()} },
			400, "bad_csr", "csr: signature does not verify: x509: ECDSA verification failure"},
		{"another identity", func(tok string) any {
			return wire.EnrollRequest{Token: tok, CSR: newCSR(t, keytype.ECDSAP256, "spiffe://example.org/admin/alice")}
		}, 400, "bad_csr", "csr: asks for identity spiffe://example.org/admin/alice but may only have spiffe://example.org/svc/billing"},
		{"another trust domain", func(tok string) any {
			return wire.EnrollRequest{Token: tok, CSR: newCSR(t, keytype.ECDSAP256, "spiffe://evil.org/svc/billing")}
		}, 400, "bad_csr", "csr: identity spiffe://evil.org/svc/billing is outside trust domain example.org"},
		{"rsa-1024", func(tok string) any { return wire.EnrollRequest{Token: tok, CSR: read("rsa-1024.csr.pem")} },
			400, "bad_csr", "csr: key type not allowed: RSA 1024 bits (want 2048, 3072 or 4096)"},
		{"p-224", func(tok string) any { return wire.EnrollRequest{Token: tok, CSR: read("p-224.csr.pem")} },
			400, "bad_csr", "csr: key type not allowed: ECDSA curve P-224"},
		{"1 MB PEM", func(tok string) any {
			return wire.EnrollRequest{Token: tok, CSR: "-----BEGIN CERTIFICATE REQUEST-----\n" + strings.Repeat("A", 1<<20) + "\n-----END CERTIFICATE REQUEST-----\n"}
		}, 413, "too_large", "request body is larger than 65536 bytes"},
		{"non-PEM garbage", func(tok string) any { return wire.EnrollRequest{Token: tok, CSR: "\x00\x01garbage"} },
			400, "bad_csr", "csr: malformed request: pemutil: no PEM data found"},
		{"certificate instead of CSR", func(tok string) any { return wire.EnrollRequest{Token: tok, CSR: certPEM} },
			400, "bad_csr", `csr: malformed request: pemutil: unexpected PEM block "CERTIFICATE" (want CERTIFICATE REQUEST)`},
		{"malformed token", func(string) any {
			return wire.EnrollRequest{Token: "cgt1.!!", CSR: newCSR(t, keytype.ECDSAP256, svcID)}
		},
			400, "bad_token", "token: malformed token: not base64url"},
		{"token for another CA", func(tok string) any {
			tk, _ := token.Parse(tok)
			tk.RootFingerprint = strings.Repeat("00", 32)
			return wire.EnrollRequest{Token: tk.String(), CSR: newCSR(t, keytype.ECDSAP256, svcID)}
		}, 400, "bad_token", "token was made for another CA (root fingerprint differs)"},
		{"wrong secret", func(tok string) any {
			tk, _ := token.Parse(tok)
			tk.Secret[0] ^= 1
			return wire.EnrollRequest{Token: tk.String(), CSR: newCSR(t, keytype.ECDSAP256, svcID)}
		}, 403, "token_invalid", "token is not valid"},
		{"unknown token", func(tok string) any {
			tk, _ := token.Parse(tok)
			tk.ID = strings.Repeat("ab", 16)
			return wire.EnrollRequest{Token: tk.String(), CSR: newCSR(t, keytype.ECDSAP256, svcID)}
		}, 403, "token_invalid", "token is not valid"},
		{"unknown field", func(tok string) any { return []byte(`{"token":"` + tok + `","csr":"x","admin":true}`) },
			400, "bad_request", `invalid JSON: json: unknown field "admin"`},
		{"empty body", func(string) any { return []byte{} }, 400, "bad_request", "request body is empty"},
		{"two objects", func(tok string) any { return []byte(`{"token":"` + tok + `"} {}`) }, 400, "bad_request", "invalid JSON: data after the object"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			tokStr := e.newToken(svcID, 0)
			before := e.certCount()
			var body []byte
			switch b := row.body(tokStr).(type) {
			case []byte:
				body = b
			default:
				body, _ = json.Marshal(b)
			}
			status, code, msg := e.raw("POST", "/v1/enroll", body, nil)
			if status != row.status || code != row.code || msg != row.msg {
				t.Fatalf("got %d %s %q\nwant %d %s %q", status, code, msg, row.status, row.code, row.msg)
			}
			if n := e.certCount(); n != before {
				t.Fatalf("%d certificates stored by a refused request", n-before)
			}
			tk, _ := token.Parse(tokStr)
			if st, err := e.store.GetToken(ctx, tk.ID); err != nil || !st.RedeemedAt.IsZero() {
				t.Fatalf("token redeemed by a refused request: %+v %v", st, err)
			}
		})
	}
}

func TestEnrollTokenReuseAndExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cl := e.client(nil)

	t.Run("reused", func(t *testing.T) {
		tok := e.newToken(svcID, 0)
		if _, err := cl.Enroll(ctx, tok, newCSR(t, keytype.ECDSAP256, svcID)); err != nil {
			t.Fatal(err)
		}
		before := e.certCount()
		_, err := cl.Enroll(ctx, tok, newCSR(t, keytype.ECDSAP256, svcID))
		wantAPIError(t, err, 403, "token_used", "token was already used")
		if e.certCount() != before {
			t.Fatal("a reused token stored a certificate")
		}
	})

	t.Run("concurrent redemptions: exactly one wins", func(t *testing.T) {
		tok := e.newToken(svcID, 0)
		before := e.certCount()
		const n = 20
		csrs := make([]string, n)
		for i := range csrs {
			csrs[i] = newCSR(t, keytype.ECDSAP256, svcID)
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.client(nil).Enroll(ctx, tok, csrs[i])
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			wantAPIError(t, err, 403, "token_used", "token was already used")
		}
		if wins != 1 || e.certCount() != before+1 {
			t.Fatalf("%d winners, %d certificates stored; want exactly 1", wins, e.certCount()-before)
		}
	})

	t.Run("expired", func(t *testing.T) {
		tok := e.newToken(svcID, time.Minute)
		e.clock.Advance(time.Minute)
		before := e.certCount()
		_, err := cl.Enroll(ctx, tok, newCSR(t, keytype.ECDSAP256, svcID))
		wantAPIError(t, err, 403, "token_expired", "token has expired")
		if e.certCount() != before {
			t.Fatal("an expired token stored a certificate")
		}
	})
}

// TestEnrollStoreFailure: when the record cannot be written, the client
// gets 503 and no certificate, and the token stays unused.
func TestEnrollStoreFailure(t *testing.T) {
	e := newEnv(t)
	tok := e.newToken(svcID, 0)
	before := e.certCount()
	e.faults.set(fmt.Errorf("store: commit: %w", store.ErrUnavailable))
	resp, err := e.client(nil).Enroll(context.Background(), tok, newCSR(t, keytype.ECDSAP256, svcID))
	wantAPIError(t, err, 503, "unavailable", "the store is unavailable; nothing was issued or changed, try again")
	if resp.Certificate != "" {
		t.Fatal("a certificate was returned without its record")
	}
	e.faults.set(nil)
	if e.certCount() != before {
		t.Fatal("certificate stored")
	}
	// The same token still works once the store is back.
	if _, err := e.client(nil).Enroll(context.Background(), tok, newCSR(t, keytype.ECDSAP256, svcID)); err != nil {
		t.Fatal(err)
	}
}

func wantAPIError(t *testing.T, err error, status int, code, msg string) {
	t.Helper()
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code || ae.Message != msg {
		t.Fatalf("got %v\nwant %d %s: %s", err, status, code, msg)
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.clientCert("/svc/billing", ca.ClientProfile)
	gw := e.clientCert("/gateway/edge", ca.ClientProfile)
	_, err := e.client(nil).ListCertificates(ctx, apiclient.ListFilter{})
	wantAPIError(t, err, 401, "unauthenticated", "a client certificate is required")
	_, err = e.client(&svc).ListCertificates(ctx, apiclient.ListFilter{})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/svc/billing may not list certificates: it holds no role; that needs the role admin or auditor")
	_, err = e.client(&gw).CreateToken(ctx, svcID, 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/gateway/edge may not create enrollment tokens: it holds only gateway; that needs the role admin or issuer")
	if _, _, err := e.client(&gw).Revocations(ctx); err != nil {
		t.Fatalf("a gateway may read revocations: %v", err)
	}
	_, _, err = e.client(&svc).Revocations(ctx)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/svc/billing may not read the revocation list: it holds no role; that needs the role admin or auditor or gateway")

	// A revoked admin is locked out at once.
	admin2 := e.clientCert("/admin/bob", ca.ClientProfile)
	serial := ca.SerialHex(admin2.Leaf.SerialNumber)
	if _, err := e.client(&e.admin).Revoke(ctx, wire.RevokeRequest{Serial: serial, Reason: "keyCompromise"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client(&admin2).ListCertificates(ctx, apiclient.ListFilter{})
	wantAPIError(t, err, 403, "revoked", "client certificate "+serial+" is revoked")
}

func TestAdminBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(&e.admin)
	_, err := admin.CreateToken(ctx, "spiffe://evil.org/x", 0)
	wantAPIError(t, err, 400, "bad_identity", `ca: identity not allowed: spiffe://evil.org/x is outside trust domain "example.org"`)
	_, err = admin.CreateToken(ctx, "https://example.org/x", 0)
	wantAPIError(t, err, 400, "bad_identity", `invalid SPIFFE ID "https://example.org/x": must start with spiffe://`)
	_, err = admin.CreateToken(ctx, svcID, 48*time.Hour)
	wantAPIError(t, err, 400, "bad_ttl", "ca: token TTL 48h0m0s is out of range (0 to 24h0m0s)")
	status, code, msg := e.raw("POST", "/v1/tokens", []byte(`{"identity":"`+svcID+`","ttl":"-5m"}`), &e.admin)
	if status != 400 || code != "bad_ttl" || msg != `ttl "-5m" is not a positive duration such as 15m` {
		t.Fatalf("negative ttl: %d %s %s", status, code, msg)
	}

	before, _ := e.store.Events(ctx, 0, 1000)
	_, err = admin.Revoke(ctx, wire.RevokeRequest{Serial: "abcdef"})
	wantAPIError(t, err, 404, "not_found", "no certificate with serial abcdef")
	_, err = admin.Revoke(ctx, wire.RevokeRequest{Serial: "abcdef", Identity: svcID})
	wantAPIError(t, err, 400, "bad_request", "give exactly one of serial, identity, identity_prefix")
	_, err = admin.Revoke(ctx, wire.RevokeRequest{Identity: svcID, Reason: "certificateHold"})
	wantAPIError(t, err, 400, "bad_reason", `ca: unknown revocation reason "certificateHold" (want one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise)`)
	after, _ := e.store.Events(ctx, 0, 1000)
	if len(after) != len(before) {
		t.Fatal("a refused revoke wrote an event")
	}
	_, err = admin.ShowCertificate(ctx, "not-hex")
	wantAPIError(t, err, 400, "bad_serial", `serial "not-hex" is not a hex serial number`)
	_, err = admin.ListCertificates(ctx, apiclient.ListFilter{Status: "pending"})
	wantAPIError(t, err, 400, "bad_request", `status "pending" is not one of valid, revoked, expired`)
	status, code, _ = e.raw("POST", "/v1/nope", nil, &e.admin)
	if status != 404 || code != "not_found" {
		t.Fatalf("unknown endpoint: %d %s", status, code)
	}
}

func TestRevokeAndList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(&e.admin)
	var serials []string
	for range 2 {
		resp, err := e.client(nil).Enroll(ctx, e.newToken(svcID, 0), newCSR(t, keytype.ECDSAP256, svcID))
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, resp.Serial)
	}
	revs, err := admin.Revoke(ctx, wire.RevokeRequest{Identity: svcID, Reason: "keyCompromise"})
	if err != nil || len(revs) != 2 || revs[0].ReasonName != "keyCompromise" || revs[0].RevokedBy != "spiffe://example.org/admin/alice" {
		t.Fatalf("revoke: %+v %v", revs, err)
	}
	list, err := admin.ListCertificates(ctx, apiclient.ListFilter{Identity: svcID})
	if err != nil || len(list) != 2 || list[0].Status != "revoked" || list[1].Revocation == nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	_, revoked, err := admin.Revocations(ctx)
	if err != nil || len(revoked) != 2 {
		t.Fatalf("revocations: %+v %v", revoked, err)
	}
	show, err := admin.ShowCertificate(ctx, serials[0])
	if err != nil || show.Status != "revoked" || !strings.Contains(show.PEM, "BEGIN CERTIFICATE") {
		t.Fatalf("show: %+v %v", show, err)
	}
	// Revoking again revokes nothing and changes nothing.
	revs, err = admin.Revoke(ctx, wire.RevokeRequest{Serial: serials[0]})
	if err != nil || len(revs) != 0 {
		t.Fatalf("second revoke: %+v %v", revs, err)
	}
}

// TestFeedByHand: the change feed is JSON lines that the real curl can
// follow; a non-gateway identity and a bad position are refused.
func TestFeedByHand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPEM, _ := pemutil.EncodePrivateKey(e.admin.PrivateKey.(crypto.Signer))
	inter, _ := x509.ParseCertificate(e.admin.Certificate[1])
	certFile := write("admin.pem", pemutil.EncodeCertificates(e.admin.Leaf, inter))
	keyFile := write("admin.key", keyPEM)
	bundle := write("bundle.pem", pemutil.EncodeCertificates(e.root))

	victim := e.clientCert("/svc/billing", ca.ClientProfile)
	cmd := exec.Command(testenv.RequirePeer(t, "curl"), "-sS", "-N", "--max-time", "2", "--cacert", bundle, "--cert", certFile, "--key", keyFile, e.url+"/v1/feed")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	serial := ca.SerialHex(victim.Leaf.SerialNumber)
	if _, err := e.client(&e.admin).Revoke(ctx, wire.RevokeRequest{Serial: serial}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // curl exits 28 at --max-time, which is the point
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], `{"type":"snapshot","position":0`) {
		t.Fatalf("feed output:\n%s\n%s", out.String(), stderr.String())
	}
	found := false
	for _, l := range lines[1:] {
		found = found || strings.Contains(l, `"type":"revoke","position":1,`) && strings.Contains(l, `"serial":"`+serial+`"`)
	}
	if !found {
		t.Fatalf("no revoke line for %s in:\n%s", serial, out.String())
	}

	svc := e.clientCert("/svc/other", ca.ClientProfile)
	status, code, msg := e.raw("GET", "/v1/feed", nil, &svc)
	if status != 403 || code != "forbidden" || msg != "identity spiffe://example.org/svc/other may not follow the change feed: it holds no role; that needs the role admin or auditor or gateway" {
		t.Fatalf("non-gateway: %d %s %s", status, code, msg)
	}
	status, code, msg = e.raw("GET", "/v1/feed?after=x", nil, &e.admin)
	if status != 400 || code != "bad_request" || msg != `after "x" is not a feed position` {
		t.Fatalf("bad after: %d %s %s", status, code, msg)
	}
	status, code, _ = e.raw("GET", "/v1/feed", nil, nil)
	if status != 401 || code != "unauthenticated" {
		t.Fatalf("no cert: %d %s", status, code)
	}
}

// TestRevokeByPrefix: a prefix revokes exactly the identities at or under
// it, segment-wise; the dry run lists the same and changes nothing.
func TestRevokeByPrefix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(&e.admin)
	serialOf := func(path string) string {
		c := e.clientCert(path, ca.ClientProfile)
		return ca.SerialHex(c.Leaf.SerialNumber)
	}
	match := map[string]bool{serialOf("/host/a"): true, serialOf("/host/a/web"): true, serialOf("/host/a/db/replica"): true}
	for _, p := range []string{"/host/ab", "/host/b/a", "/host", "/svc/host/a"} {
		match[serialOf(p)] = false
	}
	eventsBefore, _ := e.store.Events(ctx, 0, 1000)
	dry, err := admin.Revoke(ctx, wire.RevokeRequest{IdentityPrefix: "spiffe://example.org/host/a", Reason: "cessationOfOperation", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	eventsAfter, _ := e.store.Events(ctx, 0, 1000)
	if len(eventsAfter) != len(eventsBefore) {
		t.Fatal("the dry run wrote events")
	}
	if revoked, _ := e.store.ListCertificates(ctx, store.CertFilter{Status: "revoked", Now: e.clock.Now()}); len(revoked) != 0 {
		t.Fatal("the dry run revoked something")
	}
	revs, err := admin.Revoke(ctx, wire.RevokeRequest{IdentityPrefix: "spiffe://example.org/host/a", Reason: "cessationOfOperation"})
	if err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string][]wire.Revocation{"dry run": dry, "revoke": revs} {
		got := map[string]bool{}
		for _, r := range list {
			got[r.Serial] = true
			if !match[r.Serial] || r.ReasonName != "cessationOfOperation" {
				t.Fatalf("%s: %s revoked but does not match the prefix", name, r.Serial)
			}
		}
		for s, m := range match {
			if m && !got[s] {
				t.Fatalf("%s: %s matches but was not listed", name, s)
			}
		}
	}
	for s, m := range match {
		c, _ := e.store.GetCertificate(ctx, s)
		if (c.Revocation != nil) != m {
			t.Fatalf("%s (%s): revoked=%v, want %v", s, c.Identity, c.Revocation != nil, m)
		}
	}
}

// TestTLSPolicy: the API refuses TLS 1.1 and TLS 1.2 clients that offer
// only CBC suites, and negotiates TLS 1.3 when the client has it.
func TestTLSPolicy(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.url, "https://")
	dial := func(c *tls.Config) (*tls.ConnectionState, error) {
		c.RootCAs = e.roots
		conn, err := tls.Dial("tcp", addr, c)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		cs := conn.ConnectionState()
		return &cs, nil
	}
	if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1: %v", err)
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Fatalf("CBC only: %v", err)
	}
	cs, err := dial(&tls.Config{})
	if err != nil || cs.Version != tls.VersionTLS13 {
		t.Fatalf("default client: %v %+v", err, cs)
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/est"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
)

// estEnv is a server with one EST bootstrap CA (a "manufacturer"), on a
// fake clock.
type estEnv struct {
	te    *testenv.Env
	clock *clock.Fake
	mfg   *testca.CA
}

func newESTEnv(t *testing.T) *estEnv {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	mfg := testca.New(t, "mfg.example", testca.WithNow(clk.Now()))
	te := testenv.Start(t, testenv.WithClock(clk), testenv.WithServerOptions(func(o *server.Options) {
		o.ESTBootstrap = []server.ESTBootstrap{{Name: "acme", Roots: []*x509.Certificate{mfg.Root}, IdentityPrefix: "/device/"}}
	}))
	return &estEnv{te: te, clock: clk, mfg: mfg}
}

// estPeer runs the github.com/globalsign/est client, built from its own
// module (internal/est/estinterop: that client pins a go-tpm whose API
// certgate's replaced, so it stays out of certgate's module graph), one
// operation per run.
type estPeer struct {
	bin, dir, host, anchor string
}

// newESTPeer builds the client once for the test.
func (e *estEnv) newESTPeer(t *testing.T) *estPeer {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found: %v", err)
	}
	dir := t.TempDir()
	p := &estPeer{bin: filepath.Join(dir, "estinterop"), dir: dir, host: e.te.Addr, anchor: filepath.Join(dir, "roots.pem")}
	build := exec.Command(goTool, "build", "-o", p.bin, ".")
	build.Dir = filepath.Join("..", "est", "estinterop")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the globalsign/est client: %v\n%s", err, out)
	}
	if err := os.WriteFile(p.anchor, testca.EncodeCerts(e.te.Root), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// estAuth is how a peer run authenticates: an HTTP Basic password, a TLS
// client certificate (the chain, the leaf first, and its key), both or
// neither.
type estAuth struct {
	password string
	cert     *tls.Certificate
}

// estRefusal is an operation the peer saw refused.
type estRefusal struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func (r *estRefusal) Error() string { return fmt.Sprintf("%d %s", r.Status, r.Message) }

// run does one operation; req is the request for enroll and reenroll. It
// returns what the client printed, or the refusal it reported.
func (p *estPeer) run(t *testing.T, op string, a estAuth, req *x509.CertificateRequest) ([]byte, error) {
	t.Helper()
	args := []string{"-host", p.host, "-anchor", p.anchor}
	if a.password != "" {
		args = append(args, "-password", a.password)
	}
	if a.cert != nil {
		f, err := os.CreateTemp(p.dir, "client-*")
		if err != nil {
			t.Fatal(err)
		}
		for _, der := range a.cert.Certificate {
			pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
		f.Close()
		keyDER, err := x509.MarshalPKCS8PrivateKey(a.cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := f.Name() + ".key"
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-cert", f.Name(), "-key", keyFile)
	}
	if req != nil {
		f, err := os.CreateTemp(p.dir, "req-*.der")
		if err != nil {
			t.Fatal(err)
		}
		f.Write(req.Raw)
		f.Close()
		args = append(args, "-csr", f.Name())
	}
	cmd := exec.Command(p.bin, append(args, op)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		var r estRefusal
		if jerr := json.Unmarshal(stderr.Bytes(), &r); jerr != nil {
			t.Fatalf("%s: the client's refusal is not JSON: %q", op, stderr.Bytes())
		}
		return nil, &r
	case err != nil:
		t.Fatalf("%s: %v\n%s", op, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// certs runs op and parses the certificates it printed.
func (p *estPeer) certs(t *testing.T, op string, a estAuth, req *x509.CertificateRequest) ([]*x509.Certificate, error) {
	t.Helper()
	out, err := p.run(t, op, a, req)
	if err != nil {
		return nil, err
	}
	certs, perr := pemutil.ParseCertificates(out)
	if perr != nil {
		t.Fatalf("%s printed %q: %v", op, out, perr)
	}
	return certs, nil
}

// one runs enroll or reenroll and returns the one certificate issued.
func (p *estPeer) one(t *testing.T, op string, a estAuth, req *x509.CertificateRequest) (*x509.Certificate, error) {
	t.Helper()
	certs, err := p.certs(t, op, a, req)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		t.Fatalf("%s: %d certificates", op, len(certs))
	}
	return certs[0], nil
}

// csrFor makes a request for id with a new P-256 key, subject CN cn.
func estCSR(t *testing.T, id, cn string) (*x509.CertificateRequest, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return r, key
}

// tlsCert is c and its key, sent with the intermediate (crypto/tls sends
// a certificate only when its chain reaches a CA the server names).
func (e *estEnv) tlsCert(c *x509.Certificate, key *ecdsa.PrivateKey) *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{c.Raw, e.te.Intermediate.Raw}, PrivateKey: key, Leaf: c}
}

// wantESTError checks an EST refusal's status and the server's exact
// message.
func wantESTError(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	var r *estRefusal
	if !errors.As(err, &r) || r.Status != status || r.Message != msg {
		t.Fatalf("%s: got %v, want %d %q", what, err, status, msg)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// count is the certificates issued to clients (the server's own serving
// certificate renews itself when the fake clock jumps).
func (e *estEnv) count(t *testing.T) int {
	t.Helper()
	certs, err := e.te.Store.ListCertificates(context.Background(), store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range certs {
		if c.Obtained != store.ObtainedServer {
			n++
		}
	}
	return n
}

// TestESTGlobalsignClient drives every EST operation with the
// github.com/globalsign/est client (built from internal/est/estinterop): cacerts, csrattrs, enrollment by token
// and by bootstrap certificate, re-enrollment; and the refusals: no
// authentication, a spent token, a changed subject, a revoked and an
// expired certificate, a bootstrap certificate asking for another device.
func TestESTGlobalsignClient(t *testing.T) {
	e := newESTEnv(t)
	peer := e.newESTPeer(t)
	ctx := context.Background()
	td := e.te.TrustDomain
	billing := "spiffe://" + td + "/svc/billing"

	cas, err := peer.certs(t, "cacerts", estAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 2 || !cas[0].Equal(e.te.Intermediate) || !cas[1].Equal(e.te.Root) {
		t.Fatalf("cacerts: %d certificates, want the intermediate then the root", len(cas))
	}
	out, err := peer.run(t, "csrattrs", estAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var attrs struct {
		OIDs       []string `json:"oids"`
		Attributes int      `json:"attributes"`
	}
	if err := json.Unmarshal(out, &attrs); err != nil || len(attrs.OIDs) != 2 || attrs.OIDs[0] != "1.2.840.10045.4.3.2" || attrs.Attributes != 1 {
		t.Fatalf("csrattrs: %+v", attrs)
	}

	// No authentication: 401, nothing issued.
	before := e.count(t)
	req, key := estCSR(t, billing, "billing")
	_, err = peer.one(t, "enroll", estAuth{}, req)
	wantESTError(t, "no auth", err, 401, "authentication required: an enrollment token as the HTTP Basic password, or a bootstrap client certificate")
	_, err = peer.one(t, "enroll", estAuth{password: "not-a-token"}, req)
	wantESTError(t, "garbage password", err, 401, `the HTTP Basic password is not an enrollment token: token: malformed token: does not start with "cgt1."`)

	// Enrollment by token; the same token again is refused.
	tok := e.te.Token(t, billing, time.Hour)
	cert, err := peer.one(t, "enroll", estAuth{password: tok}, req)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := identity.FromCertificate(cert); err != nil || id.String() != billing {
		t.Fatalf("enrolled identity %v, %v", id, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: e.te.Roots, Intermediates: poolOf(cas[0]), CurrentTime: e.clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.te.Store.GetCertificate(ctx, strings.ToLower(cert.SerialNumber.Text(16)))
	if err != nil || rec.Obtained != store.ObtainedEnroll || rec.TokenID == "" {
		t.Fatalf("store record %+v, %v", rec, err)
	}
	req2, _ := estCSR(t, billing, "billing")
	_, err = peer.one(t, "enroll", estAuth{password: tok}, req2)
	wantESTError(t, "token reuse", err, 403, "token was already used")
	if n := e.count(t); n != before+1 {
		t.Fatalf("%d certificates recorded, want %d", n, before+1)
	}

	// Re-enrollment with the current certificate and a new key.
	current := e.tlsCert(cert, key)
	reReq, reKey := estCSR(t, billing, cert.Subject.CommonName)
	renewed, err := peer.one(t, "reenroll", estAuth{cert: current}, reReq)
	if err != nil {
		t.Fatal(err)
	}
	rec, err = e.te.Store.GetCertificate(ctx, strings.ToLower(renewed.SerialNumber.Text(16)))
	if err != nil || rec.Obtained != store.ObtainedRenew || rec.RenewedFrom != strings.ToLower(cert.SerialNumber.Text(16)) {
		t.Fatalf("renewal record %+v, %v", rec, err)
	}
	// A changed subject, another identity, the same key: refused.
	changed, _ := estCSR(t, billing, "someone-else")
	_, err = peer.one(t, "reenroll", estAuth{cert: e.tlsCert(renewed, reKey)}, changed)
	wantESTError(t, "changed subject", err, 400, `the request's subject "CN=someone-else" differs from the certificate's "CN=billing"; re-enrollment keeps the subject`)
	other, _ := estCSR(t, "spiffe://"+td+"/svc/other", "billing")
	_, err = peer.one(t, "reenroll", estAuth{cert: e.tlsCert(renewed, reKey)}, other)
	wantESTError(t, "changed identity", err, 400, `csr: asks for identity spiffe://`+td+`/svc/other but may only have spiffe://`+td+`/svc/billing`)
	_, err = peer.one(t, "reenroll", estAuth{cert: e.tlsCert(renewed, reKey)}, reReq)
	wantESTError(t, "same key", err, 400, "renewal must use a new key")
	// No certificate at all.
	_, err = peer.one(t, "reenroll", estAuth{}, reReq)
	wantESTError(t, "reenroll without certificate", err, 401, "re-enrollment needs the current client certificate")

	// A revoked certificate cannot re-enroll.
	if _, err := e.te.Authority.Revoke(ctx, store.RevokeRequest{Serial: strings.ToLower(renewed.SerialNumber.Text(16)), By: "test"}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := estCSR(t, billing, "billing")
	_, err = peer.one(t, "reenroll", estAuth{cert: e.tlsCert(renewed, reKey)}, fresh)
	wantESTError(t, "revoked", err, 403, "certificate is revoked; enroll again with a new token")

	// Enrollment by bootstrap certificate: the device's serial number
	// names its identity; the CSR must ask for exactly that.
	dev := e.mfg.Issue(t, testca.WithoutID(), testca.WithCN("dev-0042"), testca.WithEKU(x509.ExtKeyUsageClientAuth))
	devTLS := dev.TLSCertificate()
	devID := "spiffe://" + td + "/device/dev-0042"
	devReq, devKey := estCSR(t, devID, "dev-0042")
	devCert, err := peer.one(t, "enroll", estAuth{cert: &devTLS}, devReq)
	if err != nil {
		t.Fatal(err)
	}
	rec, err = e.te.Store.GetCertificate(ctx, strings.ToLower(devCert.SerialNumber.Text(16)))
	if err != nil || rec.Obtained != store.ObtainedBootstrap || rec.Identity != devID {
		t.Fatalf("bootstrap record %+v, %v", rec, err)
	}
	stolen, _ := estCSR(t, "spiffe://"+td+"/device/dev-0001", "dev-0001")
	_, err = peer.one(t, "enroll", estAuth{cert: &devTLS}, stolen)
	wantESTError(t, "bootstrap for another device", err, 400, `csr: asks for identity spiffe://`+td+`/device/dev-0001 but may only have `+devID)
	// A bootstrap certificate is good for nothing else.
	if _, err := e.te.Client(t, &devTLS).ListCertificates(ctx, apiclient.ListFilter{}); err == nil || err.Error() != "server said 403 forbidden: client certificate has no identity of this trust domain" {
		t.Fatalf("bootstrap certificate on /v1: %v", err)
	}
	// A certgate certificate is not a bootstrap certificate.
	_, err = peer.one(t, "enroll", estAuth{cert: e.tlsCert(cert, key)}, fresh)
	wantESTError(t, "certgate cert on simpleenroll", err, 403, "simpleenroll takes an enrollment token (HTTP Basic password) or a bootstrap certificate; this client certificate is neither (a certgate certificate renews with simplereenroll)")

	// An expired certificate: the handshake refuses it, nothing is issued.
	n := e.count(t)
	e.clock.Advance(devCert.NotAfter.Sub(e.clock.Now()) + time.Minute)
	late, _ := estCSR(t, devID, "dev-0042")
	if _, err = peer.one(t, "reenroll", estAuth{cert: e.tlsCert(devCert, devKey)}, late); err == nil {
		t.Fatal("an expired certificate re-enrolled")
	}
	// What the client sees depends on when the alert arrives (TLS 1.3:
	// after the client's Finished); read it where it always shows.
	conn, err := tls.Dial("tcp", e.te.Addr, &tls.Config{RootCAs: e.te.Roots, Certificates: []tls.Certificate{*e.tlsCert(devCert, devKey)}, ServerName: "127.0.0.1"})
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || err.Error() != "remote error: tls: bad certificate" {
		t.Fatalf("an expired certificate's handshake: %v", err)
	}
	if got := e.count(t); got != n {
		t.Fatalf("%d certificates after the refusals, want %d", got, n)
	}
}

// TestESTBadBodies: what is not a base64 PKCS#10 request of
// application/pkcs10, or is too large, gets its exact error and spends
// nothing: the token still enrolls afterwards.
func TestESTBadBodies(t *testing.T) {
	e := newESTEnv(t)
	billing := "spiffe://" + e.te.TrustDomain + "/svc/billing"
	tok := e.te.Token(t, billing, time.Hour)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.te.Roots}}}
	t.Cleanup(hc.CloseIdleConnections)
	post := func(contentType, body string) (int, string) {
		req, _ := http.NewRequest("POST", e.te.URL+est.PathPrefix+est.SimpleEnroll, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.SetBasicAuth("device", tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good, _ := estCSR(t, billing, "billing")
	before := e.count(t)
	for _, c := range []struct {
		name, ctype, body string
		status            int
		msg               string
	}{
		{"empty", est.MediaPKCS10, "", 400, "est: malformed request: empty body"},
		{"not base64", est.MediaPKCS10, "!!!not base64!!!", 400, "est: malformed request: body is not base64: illegal base64 data at input byte 0"},
		{"not a CSR", est.MediaPKCS10, "aGVsbG8gd29ybGQ=", 400, "est: malformed request: not a PKCS#10 request: asn1: structure error: tags don't match (16 vs {class:1 tag:8 length:101 isCompound:true}) {optional:false explicit:false application:false private:false defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} certificateRequest @2"},
		{"PEM instead of base64 DER", est.MediaPKCS10, "-----BEGIN CERTIFICATE REQUEST-----", 400, "est: malformed request: body is not base64: illegal base64 data at input byte 0"},
		{"oversized", est.MediaPKCS10, strings.Repeat("A", est.MaxBody+1), 413, "request body is larger than 16384 bytes"},
		{"wrong type", "application/json", string(est.Base64(good.Raw)), 415, "Content-Type must be application/pkcs10"},
		{"bad signature", est.MediaPKCS10, string(est.Base64(tamper(good.Raw))), 400, "csr: signature does not verify: x509: ECDSA verification failure"},
	} {
		status, msg := post(c.ctype, c.body)
		if status != c.status || strings.TrimSpace(msg) != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, msg, c.status, c.msg)
		}
	}
	if n := e.count(t); n != before {
		t.Fatalf("%d certificates recorded by refused requests", n-before)
	}
	if status, msg := post(est.MediaPKCS10, string(est.Base64(good.Raw))); status != 200 {
		t.Fatalf("the token after the refusals: %d %s", status, msg)
	}
}

// tamper flips a bit in the signature at the end of a DER CSR.
func tamper(der []byte) []byte {
	b := append([]byte{}, der...)
	b[len(b)-3] ^= 1
	return b
}

// TestESTCurlOpenSSL follows RFC 7030 §4 with curl and openssl alone, as a
// device's shell script would: get the CA certificates (§4.1), the CSR
// attributes (§4.5), enroll with the token as the HTTP Basic password
// (§4.2.1), re-enroll with the certificate and a new key (§4.2.2), and be
// refused without authentication.
func TestESTCurlOpenSSL(t *testing.T) {
	curl := testenv.RequirePeer(t, "curl")
	openssl := testenv.RequirePeer(t, "openssl")
	e := newESTEnv(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, e.te.BundlePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := e.te.URL + strings.TrimSuffix(est.PathPrefix, "/")
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CURL="+curl, "OPENSSL="+openssl, "EST="+base)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", script, err, out)
		}
		return string(out)
	}

	// §4.1: /cacerts, no client authentication.
	out := sh(`$CURL -sS --fail --cacert bundle.pem -D cacerts.h -o cacerts.p7 "$EST/cacerts"
$OPENSSL base64 -d -in cacerts.p7 | $OPENSSL pkcs7 -inform DER -print_certs -out cacerts.pem
grep -i '^content-type:' cacerts.h; grep -i '^content-transfer-encoding:' cacerts.h
$OPENSSL verify -CAfile bundle.pem cacerts.pem`)
	if !strings.Contains(out, "application/pkcs7-mime; smime-type=certs-only") || !strings.Contains(out, "base64") || !strings.Contains(out, "cacerts.pem: OK") {
		t.Fatalf("cacerts:\n%s", out)
	}
	// §4.5: /csrattrs.
	out = sh(`$CURL -sS --fail --cacert bundle.pem "$EST/csrattrs" | $OPENSSL base64 -d | $OPENSSL asn1parse -inform DER`)
	for _, want := range []string{"ecdsa-with-SHA256", "id-ecPublicKey", "prime256v1", "Extension Request"} {
		if !strings.Contains(out, want) {
			t.Fatalf("csrattrs lacks %s:\n%s", want, out)
		}
	}

	// §4.2.1: /simpleenroll, the token as the HTTP Basic password.
	id := "spiffe://" + e.te.TrustDomain + "/svc/billing"
	tok := e.te.Token(t, id, time.Hour)
	enroll := `$OPENSSL req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -subj /CN=billing \
  -addext "subjectAltName=URI:` + id + `" -outform DER -out req.der 2>/dev/null
$OPENSSL base64 -in req.der -out req.b64
$CURL -sS --cacert bundle.pem -u "device:$TOKEN" -H "Content-Type: application/pkcs10" --data-binary @req.b64 \
  -o cert.p7 -w '%{http_code}\n' "$EST/simpleenroll"
`
	// Without authentication first: 401 and a WWW-Authenticate challenge.
	out = sh(`$OPENSSL req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k0.pem -subj /CN=billing \
  -addext "subjectAltName=URI:` + id + `" -outform DER -out r0.der 2>/dev/null
$OPENSSL base64 -in r0.der -out r0.b64
$CURL -sS --cacert bundle.pem -H "Content-Type: application/pkcs10" --data-binary @r0.b64 -D - "$EST/simpleenroll"`)
	if !strings.HasPrefix(out, "HTTP/2 401") || !strings.Contains(strings.ToLower(out), `www-authenticate: basic realm="certgate est (password: enrollment token)"`) ||
		!strings.Contains(out, "authentication required: an enrollment token as the HTTP Basic password, or a bootstrap client certificate") {
		t.Fatalf("no auth:\n%s", out)
	}
	out = sh("TOKEN='" + tok + "'\n" + enroll + `$OPENSSL base64 -d -in cert.p7 | $OPENSSL pkcs7 -inform DER -print_certs -out cert.pem
$OPENSSL x509 -in cert.pem -noout -ext subjectAltName
$OPENSSL verify -CAfile bundle.pem -untrusted cacerts.pem -purpose sslclient cert.pem`)
	if !strings.HasPrefix(out, "200\n") || !strings.Contains(out, "URI:"+id) || !strings.Contains(out, "cert.pem: OK") {
		t.Fatalf("simpleenroll:\n%s", out)
	}
	// The token is spent.
	out = sh("TOKEN='" + tok + "'\nmv key.pem key1.pem\n" + enroll + "cat cert.p7; mv key1.pem key.pem")
	if !strings.HasPrefix(out, "403\n") || !strings.Contains(out, "token was already used") {
		t.Fatalf("token reuse:\n%s", out)
	}

	// §4.2.2: /simplereenroll with the current certificate, same subject,
	// new key.
	out = sh(`$OPENSSL req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key2.pem -subj /CN=billing \
  -addext "subjectAltName=URI:` + id + `" -outform DER 2>/dev/null | $OPENSSL base64 -out re.b64
cat cert.pem cacerts.pem > chain.pem
$CURL -sS --cacert bundle.pem --cert chain.pem --key key.pem -H "Content-Type: application/pkcs10" --data-binary @re.b64 \
  -o cert2.p7 -w '%{http_code}\n' "$EST/simplereenroll"
$OPENSSL base64 -d -in cert2.p7 | $OPENSSL pkcs7 -inform DER -print_certs -out cert2.pem
$OPENSSL x509 -in cert2.pem -noout -ext subjectAltName
$OPENSSL x509 -in cert2.pem -noout -pubkey > pub2.pem; $OPENSSL pkey -in key2.pem -pubout > want2.pem; cmp pub2.pem want2.pem && echo same-key-as-key2`)
	if !strings.HasPrefix(out, "200\n") || !strings.Contains(out, "URI:"+id) || !strings.Contains(out, "same-key-as-key2") {
		t.Fatalf("simplereenroll:\n%s", out)
	}
	// A changed subject is refused.
	out = sh(`$OPENSSL req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key3.pem -subj /CN=mallory \
  -addext "subjectAltName=URI:` + id + `" -outform DER 2>/dev/null | $OPENSSL base64 -out re3.b64
cat cert2.pem cacerts.pem > chain2.pem
$CURL -sS --cacert bundle.pem --cert chain2.pem --key key2.pem -H "Content-Type: application/pkcs10" --data-binary @re3.b64 \
  -w '\n%{http_code}\n' "$EST/simplereenroll"`)
	if !strings.Contains(out, `the request's subject "CN=mallory" differs from the certificate's "CN=billing"; re-enrollment keeps the subject`) || !strings.HasSuffix(out, "\n400\n") {
		t.Fatalf("changed subject:\n%s", out)
	}
}

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// TestEmergencyRotation is issue 12's emergency: with a client served
// through a gateway that follows the real server's feed, and its agent
// running, "certgate ca rotate-intermediate --revoke-old --reason
// keyCompromise" revokes the intermediate. Within a second the client's
// live connection is cut and a new handshake with the old certificate is
// refused; the agent renews under the new intermediate at its next check;
// the client is served again with the new certificate; the root's CRL
// lists the old intermediate (openssl verify -crl_check_all refuses the
// old chain); nothing was lost (every certificate is recorded, the audit
// chain verifies).
func TestEmergencyRotation(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
	f := newCASetup(t)
	dir := f.enrollCLI(t, "billing")
	var a *agent.Agent
	a, err := agent.New(agent.Options{Dir: dir, ServerURL: f.url, Clock: clock.Real{}, CheckInterval: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	old := readChain(t, dir)
	oldIssuer := old[1]
	oldCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// A live keep-alive connection, served.
	tcOld := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{oldCert}, NextProtos: []string{"http/1.1"}}
	conn, br, done, err := openLive(f.gwAddr, tcOld)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitRead(br)

	out := testenv.MustCLI(t, f.bin, "ca", "rotate-intermediate", "--dir", f.dir, "--revoke-old", "--reason", "keyCompromise")
	cut := time.Now()
	t.Logf("certgate ca rotate-intermediate --revoke-old:\n%s", out)
	if !strings.Contains(out, "intermediate rotation 1: done") {
		t.Fatalf("rotation output:\n%s", out)
	}

	// Cut off within a second: the live connection, and new handshakes.
	select {
	case <-done:
		t.Logf("live connection of the old certificate closed %v after the command returned", time.Since(cut).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("the live connection of a certificate of the revoked intermediate is still open after 1s")
	}
	deadline := cut.Add(time.Second)
	for refused(f.gwAddr, tcOld) == nil {
		if time.Now().After(deadline) {
			t.Fatal("a handshake with a certificate of the revoked intermediate is still accepted after 1s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The agent renews under the new intermediate at its next check.
	var fresh []*x509.Certificate
	for deadline := time.Now().Add(10 * time.Second); ; {
		// The status moves once the new certificate is the one the agent
		// presents, after it wrote the files.
		if st := a.Status(); st.Serial != ca.SerialHex(old[0].SerialNumber) && st.Renewals > 0 {
			fresh = readChain(t, dir)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not renew within 10s of the emergency rotation: %+v", a.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	renewed := time.Since(cut)
	t.Logf("agent renewed under the new intermediate %v after the rotation", renewed.Round(time.Millisecond))
	if fresh[1].Equal(oldIssuer) || fresh[0].CheckSignatureFrom(fresh[1]) != nil || hex.EncodeToString(fresh[0].AuthorityKeyId) == ca.KeyID(oldIssuer) {
		t.Fatal("the renewed certificate is not issued by the new intermediate")
	}
	// Back in service, with what the agent wrote.
	tcNew := &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", GetClientCertificate: a.GetClientCertificate, NextProtos: []string{"http/1.1"}}
	conn2, _, _, err := openLive(f.gwAddr, tcNew)
	if err != nil {
		t.Fatalf("after renewal: %v", err)
	}
	conn2.Close()

	// Third-party verifiers: the root's CRL lists the old intermediate.
	tmp := t.TempDir()
	bundle := filepath.Join(f.dir, "bundle.pem")
	roots, _ := pemutil.ParseCertificates(mustRead(t, bundle))
	crlURL := oldIssuer.CRLDistributionPoints[0]
	if want := "/crl/" + ca.KeyID(roots[0]); !strings.HasSuffix(crlURL, want) {
		t.Fatalf("the intermediate's CRL distribution point %s, want .../%s", crlURL, want)
	}
	rootCRL := fetchCRL(t, f, crlURL)
	if len(rootCRL.RevokedCertificateEntries) != 1 || rootCRL.RevokedCertificateEntries[0].SerialNumber.Cmp(oldIssuer.SerialNumber) != 0 ||
		rootCRL.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("root CRL lists %+v, want the old intermediate for keyCompromise", rootCRL.RevokedCertificateEntries)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crls := write("crls.pem", append(pemCRL(rootCRL.Raw), pemCRL(fetchCRL(t, f, fresh[0].CRLDistributionPoints[0]).Raw)...))
	oldLeaf, oldInter := write("old.pem", pemutil.EncodeCertificates(old[0])), write("oldinter.pem", pemutil.EncodeCertificates(oldIssuer))
	// The old intermediate is revoked by the root's CRL (its own CRL is
	// no longer published: its key is not trusted to sign one).
	o, err := exec.Command(openssl, "verify", "-crl_check", "-CAfile", bundle, "-CRLfile", crls, oldInter).CombinedOutput()
	if err == nil || !strings.Contains(string(o), "certificate revoked") {
		t.Fatalf("openssl verify -crl_check of the old intermediate: %v\n%s", err, o)
	}
	_ = oldLeaf
	newLeaf, newInter := write("new.pem", pemutil.EncodeCertificates(fresh[0])), write("newinter.pem", pemutil.EncodeCertificates(fresh[1]))
	if o, err := exec.Command(openssl, "verify", "-crl_check_all", "-CAfile", bundle, "-untrusted", newInter, "-CRLfile", crls, newLeaf).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify -crl_check_all of the new chain: %v\n%s", err, o)
	}

	// Nothing lost: every certificate handed out is recorded, the audit
	// chain verifies, and the admin credentials were replaced.
	st, err := store.Open(context.Background(), filepath.Join(f.dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []*x509.Certificate{old[0], fresh[0]} {
		rec, err := st.GetCertificate(context.Background(), ca.SerialHex(c.SerialNumber))
		if err != nil || rec.Fingerprint != ca.Fingerprint(c) {
			t.Fatalf("certificate %x: %v", c.SerialNumber, err)
		}
	}
	if out := testenv.MustCLI(t, f.bin, "audit", "verify", "--dir", f.dir); !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("audit verify: %s", out)
	}
	if out := testenv.MustCLI(t, f.bin, "cert", "list", "--dir", f.dir); !strings.Contains(out, "spiffe://example.org/svc/billing") {
		t.Fatalf("the admin certificate after the emergency (replaced by the ca command): cert list printed\n%s", out)
	}
	status := testenv.MustCLI(t, f.bin, "ca", "status", "--dir", f.dir)
	if !strings.Contains(status, "intermediate  1    revoked") || !strings.Contains(status, "intermediate  2    active") {
		t.Fatalf("ca status:\n%s", status)
	}
}

// caSetup is a CA directory made by "certgate init", a "certgate server"
// process on it, and a gateway that follows its change feed.
type caSetup struct {
	bin, dir, url string
	roots         *x509.CertPool
	gwAddr        string
}

func newCASetup(t *testing.T) *caSetup {
	t.Helper()
	f := &caSetup{bin: testenv.Certgate(t), dir: filepath.Join(t.TempDir(), "ca")}
	addr := testenv.FreeAddr(t)
	testenv.MustCLI(t, f.bin, "init", "--dir", f.dir, "--trust-domain", "example.org", "--listen", addr)
	roots, err := pemutil.ParseCertificates(mustRead(t, filepath.Join(f.dir, "bundle.pem")))
	if err != nil {
		t.Fatal(err)
	}
	f.roots = x509.NewCertPool()
	f.roots.AddCert(roots[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.url = testenv.StartServerProcess(ctx, t, f.bin, f.dir, f.roots).URL
	// The gateway enrolls and renews its own certificate (an identity
	// section), as a deployment following the docs does.
	testenv.MustCLI(t, f.bin, "role", "grant", "--dir", f.dir, "gateway", "spiffe://example.org/gateway/gw1")
	tok := strings.TrimSpace(testenv.MustCLI(t, f.bin, "token", "create", "--dir", f.dir, "--identity", "spiffe://example.org/gateway/gw1", "--role", "gateway", "--ttl", "10m"))
	base := t.TempDir()
	cfgPath := filepath.Join(base, "gateway.yaml")
	y := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
identity:
  dir: gw
  hosts: [localhost, 127.0.0.1]
revocation:
  max_staleness: 1m
  max_backoff: 300ms
routes:
  - name: api
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, testenv.Upstream(t, gateway.HeaderIdentity))
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, err := gatewaytest.Start(t, gatewaytest.Options{Dir: base, File: cfgPath, Token: tok,
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	f.gwAddr = gw.Addr
	return f
}

// enrollCLI enrolls spiffe://example.org/svc/NAME (NAME may climb out of
// /svc/) with "certgate token create" and "certgate enroll" into a new
// directory, and returns it.
func (f *caSetup) enrollCLI(t *testing.T, name string) string {
	t.Helper()
	id := "spiffe://example.org" + filepath.Clean("/svc/"+name)
	tok := strings.TrimSpace(testenv.MustCLI(t, f.bin, "token", "create", "--dir", f.dir, "--identity", id, "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), "client")
	testenv.MustCLI(t, f.bin, "enroll", "--token", tok, "--out", out)
	return out
}

func readChain(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	certs, err := pemutil.ParseCertificates(mustRead(t, filepath.Join(dir, "cert.pem")))
	if err != nil || len(certs) < 2 {
		t.Fatalf("cert.pem: %d certificates, %v", len(certs), err)
	}
	return certs
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetchCRL GETs a CRL from the server (the URL's host is the server) over
// its TLS, as the distribution point names it.
func fetchCRL(t *testing.T, f *caSetup, u string) *x509.RevocationList {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}, Timeout: 10 * time.Second}
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	rl, err := x509.ParseRevocationList(b)
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

package integration

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/calife"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/server"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// TestTwoYears runs a CA for two years of fake time, in steps of twelve
// hours: the server (its schedule rotates the intermediate at 2/3 of its
// life, three times), one root rotation (prepare at day 300, activate at
// day 310, finished by the schedule once nothing under the old root is
// valid), a gateway that enrolls and renews itself and follows the feed,
// a service that serves with the SDK (certgatetls), and agents renewing
// the clients of both. At every step both clients are served: zero failed
// requests. Every certificate an agent wrote verifies with openssl against
// the bundle that client held at that moment (-attime), and at every
// change of CA the OCSP responder and the CRLs answer right for the
// certificates of every issuer in service: good, revoked (a certificate
// revoked for the check), unknown for another issuer's serial.
func TestTwoYears(t *testing.T) {
	if testing.Short() {
		t.Skip("two years of CA operation; skipped with -short")
	}
	openssl := testenv.RequirePeer(t, "openssl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Fake time starts at the real now: the gateway enrolls itself on the
	// wall clock.
	start := time.Now().UTC().Truncate(time.Second)
	clk := clock.NewFake(start)
	pass := []byte(testenv.Passphrase)

	// The CA, with week-long client certificates (fewer steps than 24 h,
	// the same phases).
	dir := filepath.Join(t.TempDir(), "ca")
	addr := testenv.FreeAddr(t)
	cfg := config.DefaultServer("example.org")
	cfg.Listen.Listen, cfg.Listen.URL, cfg.Listen.Hostnames = addr, "https://"+addr, []string{"127.0.0.1"}
	cfg.Profiles.ClientLifetime = 7 * 24 * time.Hour
	if err := cadir.Init(ctx, cadir.InitOptions{Dir: dir, TrustDomain: "example.org", Passphrase: pass, Config: &cfg, Clock: clk}); err != nil {
		t.Fatal(err)
	}
	in, err := cadir.Open(ctx, dir, pass, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv, err := server.New(server.Options{Authority: in.Authority, Store: in.Store, Clock: clk, Hostnames: []string{"127.0.0.1"},
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	m, err := in.Lifecycle(nil)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + addr

	// The gateway's and the SDK server's certificates serve TLS because they
	// hold the gateway role.
	if err := in.Store.GrantRole(ctx, roles.Grant{Role: roles.Gateway, Holder: "spiffe://example.org/gateway/*", GrantedBy: "test", GrantedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	token := func(id string) string {
		tok, err := in.Authority.CreateToken(ctx, "test", identity.MustParse(id), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok.String()
	}
	var agents []*agent.Agent
	runAgent := func(dir string) *agent.Agent {
		a, err := agent.New(agent.Options{Dir: dir, ServerURL: url, Clock: clk, Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent of %s: %v", dir, err)
			}
		})
		agents = append(agents, a)
		return a
	}
	enrollTo := func(id string, ips ...net.IP) string {
		out := filepath.Join(t.TempDir(), "creds")
		if _, err := enroll.Enroll(ctx, enroll.Options{Token: token(id), OutDir: out, Now: clk.Now, IPAddresses: ips}); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// The gateway, with its own identity.
	gwBase := t.TempDir()
	gwCfg := filepath.Join(gwBase, "gateway.yaml")
	if err := os.WriteFile(gwCfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: example.org
identity:
  dir: gw
  hosts: [127.0.0.1]
revocation:
  max_staleness: 100000h
  max_backoff: 300ms
routes:
  - name: api
    upstream: %s
    allow: ["spiffe://example.org/svc/*"]
`, testenv.Upstream(t, gateway.HeaderIdentity))), 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway reads its files (its renewed certificate and bundle)
	// every 2 s of real time; twelve hours of fake time take some
	// milliseconds here, so the test has it read them at every step.
	reload := make(chan os.Signal, 1)
	gw, err := gatewaytest.Start(t, gatewaytest.Options{Dir: gwBase, File: gwCfg, Clock: clk, Token: token("spiffe://example.org/gateway/gw1"), Reload: reload,
		Log: slog.New(slog.NewTextHandler(testenv.LogWriter{T: t}, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatal(err)
	}

	// The service on the SDK, its credentials renewed by an agent.
	sdkDir := enrollTo("spiffe://example.org/gateway/sdk-api", net.IPv4(127, 0, 0, 1))
	runAgent(sdkDir)
	src, err := certgatetls.NewSource(sdkDir, certgatetls.WithClock(clk), certgatetls.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	revs, err := certgatetls.StartRevocations(ctx, certgatetls.RevocationOptions{ServerURL: url, Mode: certgatetls.RevocationFeed, Source: src,
		MaxStaleness: 100000 * time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer revs.Close()
	sdkTLS, err := certgatetls.ServerConfig(certgatetls.ServerOptions{Source: src, Revocations: revs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	sdkLn, err := tls.Listen("tcp", "127.0.0.1:0", sdkTLS)
	if err != nil {
		t.Fatal(err)
	}
	sdkSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := certgatetls.IdentityFromRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "hello %s\n", id)
	}), ErrorLog: nil}
	go sdkSrv.Serve(sdkLn)
	defer sdkSrv.Close()

	// Two clients, one through the gateway, one to the SDK service.
	clients := []struct {
		name, dir, target string
		a                 *agent.Agent
		lastLeaf          []byte
	}{
		{name: "gateway client", target: "https://" + gw.Addr + "/x"},
		{name: "SDK client", target: "https://" + sdkLn.Addr().String() + "/x"},
	}
	for i := range clients {
		clients[i].dir = enrollTo(fmt.Sprintf("spiffe://example.org/svc/client%d", i))
		clients[i].a = runAgent(clients[i].dir)
	}

	tmp := t.TempDir()
	failed, requests, verified := 0, 0, 0
	request := func(c int) {
		cl := &clients[c]
		creds, err := certgatetls.ReadCredentials(cl.dir)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: creds.Roots,
			GetClientCertificate: cl.a.GetClientCertificate, Time: clk.Now}}, Timeout: 10 * time.Second}
		defer hc.CloseIdleConnections()
		requests++
		resp, err := hc.Get(cl.target)
		if err != nil {
			failed++
			t.Errorf("%s at %s: %v", cl.name, clk.Now().Format(time.DateOnly), err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
			t.Errorf("%s at %s: %d %s", cl.name, clk.Now().Format(time.DateOnly), resp.StatusCode, body)
		}
	}
	// verify checks a client's current certificate with openssl against the
	// bundle it holds, at the fake now.
	verify := func(c int) {
		cl := &clients[c]
		certPEM, err := os.ReadFile(filepath.Join(cl.dir, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(certPEM, cl.lastLeaf) {
			return
		}
		cl.lastLeaf = certPEM
		chain, err := pemutil.ParseCertificates(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf := filepath.Join(tmp, "leaf.pem")
		untrusted := filepath.Join(tmp, "untrusted.pem")
		os.WriteFile(leaf, pemutil.EncodeCertificates(chain[0]), 0o644)
		os.WriteFile(untrusted, pemutil.EncodeCertificates(chain[1:]...), 0o644)
		out, err := exec.Command(openssl, "verify", "-attime", strconv.FormatInt(clk.Now().Unix(), 10), "-purpose", "sslclient",
			"-CAfile", filepath.Join(cl.dir, "bundle.pem"), "-untrusted", untrusted, leaf).CombinedOutput()
		if err != nil {
			t.Errorf("%s at %s: openssl verify against the bundle it holds: %v\n%s", cl.name, clk.Now().Format(time.DateOnly), err, out)
		}
		verified++
	}

	// statusCheck asks the OCSP responder and the CRLs about the current
	// certificate of each client and about a certificate revoked for the
	// purpose under each intermediate that answers.
	statusChecks := 0
	statusCheck := func() {
		statusChecks++
		h := in.Authority.Hierarchy()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(h.Roots), Time: clk.Now}}, Timeout: 10 * time.Second}
		defer hc.CloseIdleConnections()
		var issuers []*x509.Certificate
		for _, iss := range h.Status {
			issuers = append(issuers, iss.Certificate())
		}
		for _, iss := range issuers {
			// A probe under this issuer: good, then revoked.
			probe, err := in.Authority.IssueDirectBy(ctx, h.Status[ca.KeyID(iss)], ca.Request{PublicKey: mustKey(t).Public(),
				Identity: identity.MustParse("spiffe://example.org/svc/probe")}, ca.ClientProfile, store.ObtainedEnroll, "test")
			if err != nil {
				t.Fatal(err)
			}
			ocspStatus(t, hc, url, probe.Cert, iss, ocsp.Good)
			if _, err := in.Authority.Revoke(ctx, store.RevokeRequest{Serial: probe.Record.Serial, Reason: 1, By: "test"}); err != nil {
				t.Fatal(err)
			}
			ocspStatus(t, hc, url, probe.Cert, iss, ocsp.Revoked)
			rl := getCRL(t, hc, probe.Cert.CRLDistributionPoints[0], iss)
			if !listed(rl, probe.Cert) {
				t.Errorf("at %s: the CRL of %s does not list a certificate it revoked", clk.Now().Format(time.DateOnly), iss.Subject.CommonName)
			}
			// Every other issuer says unknown about it.
			for _, other := range issuers {
				if !other.Equal(iss) {
					ocspStatus(t, hc, url, probe.Cert, other, ocsp.Unknown)
				}
			}
		}
		for _, cl := range clients {
			chain, _ := pemutil.ParseCertificates(mustRead(t, filepath.Join(cl.dir, "cert.pem")))
			ocspStatus(t, hc, url, chain[0], chain[1], ocsp.Good)
			if listed(getCRL(t, hc, chain[0].CRLDistributionPoints[0], chain[1]), chain[0]) {
				t.Errorf("%s: its CRL lists it", cl.name)
			}
		}
	}

	// waitAgents waits until every agent has done what was due at now.
	waitAgents := func(now time.Time) {
		deadline := time.Now().Add(30 * time.Second)
		for _, a := range agents {
			for {
				st := a.Status()
				if st.NextRenewal.After(now) && st.State == agent.StateWaiting {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("at %s an agent is not done: %+v", now.Format(time.RFC3339), st)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}

	const step = 12 * time.Hour
	prepareAt, activateAt := start.Add(300*24*time.Hour), start.Add(310*24*time.Hour)
	lastCA := ""
	for now := start; now.Before(start.Add(2 * 365 * 24 * time.Hour)); now = now.Add(step) {
		clk.AdvanceTo(now)
		if _, err := m.Tick(ctx); err != nil {
			t.Fatalf("at %s: %v", now.Format(time.DateOnly), err)
		}
		if !now.Before(prepareAt) && now.Add(-step).Before(prepareAt) {
			if _, err := m.PrepareRoot(ctx, calife.PrepareOptions{Actor: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		if !now.Before(activateAt) && now.Add(-step).Before(activateAt) {
			if _, err := m.ActivateRoot(ctx, "test", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		waitAgents(now)
		select {
		case reload <- syscall.SIGHUP:
		default:
		}
		// Let the feed and the reload reach the gateway and the SDK (real
		// time).
		time.Sleep(20 * time.Millisecond)
		// The gateway's own agent renews its certificate on the fake
		// clock too, but waitAgents does not see it; on a loaded machine
		// its renewal and the reload can lag the clock by steps. Wait
		// (real time) until both servers present a certificate valid at
		// now, as they would long before it expired in real time.
		for _, cl := range clients {
			waitServing(t, clk.Now(), strings.TrimSuffix(strings.TrimPrefix(cl.target, "https://"), "/x"), cl.a.GetClientCertificate)
		}
		for c := range clients {
			verify(c)
			request(c)
		}
		if sig := caSignature(in); sig != lastCA {
			lastCA = sig
			t.Logf("%s: %s", now.Format(time.DateOnly), sig)
			statusCheck()
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	rep, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rotations []string
	for _, r := range rep.Rotations {
		rotations = append(rotations, fmt.Sprintf("%s %d %s", r.Kind, r.ID, r.Phase))
	}
	t.Logf("two years: %d requests, %d failed; %d certificates verified with openssl; %d OCSP/CRL checks; rotations %v",
		requests, failed, verified, statusChecks, rotations)
	if failed != 0 {
		t.Fatalf("%d failed requests", failed)
	}
	gens := map[string]int{}
	for _, c := range rep.CAs {
		gens[c.Kind]++
	}
	if gens[store.CAKindRoot] != 2 || gens[store.CAKindIntermediate] < 4 {
		t.Fatalf("after two years: %v CA certificates; want 2 roots and at least 4 intermediates (3 automatic rotations and the root's)", gens)
	}
	for _, c := range rep.CAs {
		if c.Kind == store.CAKindRoot && c.Generation == 1 && c.State != store.CARetired {
			t.Fatalf("the old root is %s, not retired", c.State)
		}
	}
}

// caSignature names the CA's state: the states of its certificates.
func caSignature(in *cadir.Installation) string {
	var parts []string
	for _, c := range in.Authority.Hierarchy().CAs {
		parts = append(parts, fmt.Sprintf("%s%d:%s", c.Kind[:1], c.Generation, c.State))
	}
	return strings.Join(parts, " ")
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func ocspStatus(t *testing.T, hc *http.Client, url string, leaf, issuer *x509.Certificate, want int) {
	t.Helper()
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post(url+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r, err := ocsp.ParseResponse(body, issuer)
	if err != nil || r.Status != want {
		st := -1
		if r != nil {
			st = r.Status
		}
		t.Errorf("OCSP about %x under %s: status %d (%v, %s), want %d", leaf.SerialNumber, issuer.Subject.CommonName, st, err, resp.Header.Get("Certgate-Error"), want)
	}
}

func getCRL(t *testing.T, hc *http.Client, u string, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rl, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatalf("CRL %s: %v (%d %s)", u, err, resp.StatusCode, body)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL %s is not signed by %s: %v", u, issuer.Subject.CommonName, err)
	}
	return rl
}

func listed(rl *x509.RevocationList, c *x509.Certificate) bool {
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func mustKey(t *testing.T) interface{ Public() crypto.PublicKey } {
	t.Helper()
	k, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitServing waits, up to 30 s of real time, until the TLS server at addr
// presents a leaf certificate valid at now. It only waits: a server that
// never catches up fails the request that follows, with its error.
func waitServing(t *testing.T, now time.Time, addr string, clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// Only the validity period is read here; the request that
		// follows verifies the chain.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true,
			GetClientCertificate: clientCert})
		if err != nil {
			continue
		}
		pc := c.ConnectionState().PeerCertificates
		c.Close()
		if len(pc) > 0 && !now.Before(pc[0].NotBefore) && now.Before(pc[0].NotAfter) {
			return
		}
	}
}

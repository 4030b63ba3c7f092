package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/token"
)

// demoTokenTTL bounds the demo tokens: they are redeemed a few
// milliseconds after they are minted, and a leftover one is useless soon.
const demoTokenTTL = 5 * time.Minute

// quickstartGatewayName is the gateway's identity path below /gateway/.
const quickstartGatewayName = "quickstart"

type demoSetup struct {
	clients map[string]quickstartClientInfo
}

// enrollDemo enrolls, through the running server's API as any operator
// and client would, the two demo clients into DIR/clients/{allowed,denied}
// and the gateway's own certificate (its serving certificate and its
// client certificate for the change feed) into DIR/gateway. Each run
// enrolls afresh: the allowed client of a previous run may be revoked.
func enrollDemo(ctx context.Context, dir, td, gatewayListen string) (demoSetup, error) {
	admin, err := adminClient(dir, "")
	if err != nil {
		return demoSetup{}, err
	}
	defer admin.CloseIdleConnections()
	d := demoSetup{clients: map[string]quickstartClientInfo{}}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	// The three enrollments are independent; in parallel they cost one
	// round of handshakes instead of three.
	job := func(path string, f func(tok string) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				id, err := identity.New(td, path)
				if err != nil {
					return fmt.Errorf("quickstart: %w", err)
				}
				tok, err := admin.CreateToken(ctx, id.String(), demoTokenTTL)
				if err != nil {
					return fmt.Errorf("quickstart: token for %s: %w", id, err)
				}
				return f(tok.Token)
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	for _, name := range []string{"allowed", "denied"} {
		out := filepath.Join(dir, "clients", name)
		job("/demo/"+name, func(tok string) error {
			res, err := enroll.Enroll(ctx, enroll.Options{Token: tok, OutDir: out})
			if err != nil {
				return err
			}
			mu.Lock()
			d.clients[name] = quickstartClientInfo{
				Identity: res.Identity.String(), Dir: out,
				Cert: filepath.Join(out, enroll.CertFile), Key: filepath.Join(out, enroll.KeyFile),
			}
			mu.Unlock()
			return nil
		})
	}
	job("/gateway/"+quickstartGatewayName, func(tok string) error {
		dns, ips := gatewayHosts(gatewayListen)
		return enrollServing(ctx, tok, filepath.Join(dir, "gateway"), dns, ips)
	})
	wg.Wait()
	return d, errors.Join(errs...)
}

// gatewayHosts are the names the gateway's serving certificate carries:
// loopback by every usual name, plus the --listen host.
func gatewayHosts(listen string) (dns []string, ips []net.IP) {
	dns = []string{"localhost"}
	ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return dns, ips
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	} else if !slices.Contains(dns, strings.ToLower(host)) {
		dns = append(dns, strings.ToLower(host))
	}
	return dns, ips
}

// enrollServing redeems a /gateway/ token with a CSR that names hosts, as
// enroll.Enroll does for a client: the key is made here, the server is
// trusted through the root the token pins, and the answer is checked
// before key.pem, cert.pem and bundle.pem are written into out.
func enrollServing(ctx context.Context, tokStr, out string, dns []string, ips []net.IP) error {
	tok, err := token.Parse(tokStr)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	key, err := keytype.Generate(keytype.Default)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	csrPEM, err := csr.CreateWithHosts(key, tok.Identity, dns, ips)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	u, err := url.Parse(tok.ServerURL)
	if err != nil {
		return fmt.Errorf("quickstart: token server URL: %w", err)
	}
	var pinned *x509.Certificate
	cl, err := apiclient.New(apiclient.Options{ServerURL: tok.ServerURL, VerifyConnection: apiclient.PinnedRoot(tok.RootFingerprint, u.Hostname(), &pinned)})
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Enroll(ctx, tokStr, string(csrPEM))
	if err != nil {
		return fmt.Errorf("quickstart: gateway enrollment: %w", err)
	}
	chain, err := checkServing(resp.Certificate+resp.Chain, key, tok.Identity, pinned)
	if err != nil {
		return err
	}
	return enroll.Write(out, key, chain, []*x509.Certificate{pinned})
}

// checkServing makes sure the gateway's new certificate is for its key and
// identity, chains to the pinned root, and serves TLS as well as
// authenticating the gateway to the server.
func checkServing(chainPEM string, key crypto.Signer, id identity.ID, root *x509.Certificate) ([]*x509.Certificate, error) {
	chain, err := pemutil.ParseCertificates([]byte(chainPEM))
	if err != nil {
		return nil, fmt.Errorf("quickstart: gateway certificate: %w", err)
	}
	leaf := chain[0]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("quickstart: the server returned a gateway certificate for another key")
	}
	if got, err := identity.FromCertificate(leaf); err != nil || got != id {
		return nil, fmt.Errorf("quickstart: the server returned a gateway certificate for %v, not %s", got, id)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
			return nil, fmt.Errorf("quickstart: the gateway certificate does not verify: %w", err)
		}
	}
	return chain, nil
}

// writeQuickstartGatewayConfig writes DIR/gateway/gateway.yaml: one route
// to the demo upstream that lets only demo/allowed through, revocations
// from the server's change feed, the access log beside it.
func writeQuickstartGatewayConfig(dir, listen, td, serverURL, upstreamURL string) (string, error) {
	q := func(s string) string {
		b, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
		return string(b)
	}
	allowed, err := identity.New(td, "/demo/allowed")
	if err != nil {
		return "", fmt.Errorf("quickstart: %w", err)
	}
	cfg := fmt.Sprintf(`# Written by "certgate quickstart" on every run; edits are overwritten.
listen: %s
trust_domain: %s
bundle: %s
cert: cert.pem
key: key.pem
server:
  url: %s
access_log:
  path: access.log
routes:
  - name: demo
    path_prefix: /
    upstream: %s
    allow: [%s]
`, q(listen), q(td), q(filepath.Join(dir, "bundle.pem")), q(serverURL), q(upstreamURL), q(allowed.String()))
	path := filepath.Join(dir, "gateway", "gateway.yaml")
	if err := atomicfile.Write(path, []byte(cfg), 0o600); err != nil {
		return "", fmt.Errorf("quickstart: %w", err)
	}
	return path, nil
}

// echoHandler is the demo upstream: it answers every request with the
// identity the gateway forwarded, so a caller sees what an API behind
// certgate learns about it.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(gateway.HeaderIdentity)
		answer := struct {
			Message     string `json:"message"`
			Identity    string `json:"identity"`
			Serial      string `json:"serial"`
			XFCC        string `json:"x_forwarded_client_cert"`
			ClientCert  string `json:"client_cert"`
			ClientChain string `json:"client_cert_chain"`
			Method      string `json:"method"`
			Path        string `json:"path"`
		}{
			Message:  "hello " + id + ", this is the demo API behind the certgate gateway",
			Identity: id, Serial: r.Header.Get(gateway.HeaderSerial), XFCC: r.Header.Get(gateway.HeaderXFCC),
			ClientCert:  sizeOf(r.Header.Get(gateway.HeaderClientCert)),
			ClientChain: sizeOf(r.Header.Get(gateway.HeaderClientCertChain)),
			Method:      r.Method, Path: r.URL.Path,
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(answer)
	})
}

// sizeOf summarises a long header (a whole certificate) for the echo.
func sizeOf(v string) string {
	if v == "" {
		return "absent"
	}
	return fmt.Sprintf("present (%d bytes)", len(v))
}

// demoCommands builds the shell commands quickstart prints; prefix runs
// certgate (see certgateCommand).
func demoCommands(info quickstartInfo, prefix string) quickstartCommands {
	target := shellQuote(info.GatewayURL + "/hello")
	bundle := "--cacert " + shellQuote(info.Bundle)
	curl := func(c quickstartClientInfo) string {
		return fmt.Sprintf("curl -sS -i %s --cert %s --key %s %s", bundle, shellQuote(c.Cert), shellQuote(c.Key), target)
	}
	return quickstartCommands{
		Allowed:       curl(info.Clients["allowed"]),
		Denied:        curl(info.Clients["denied"]),
		NoCertificate: fmt.Sprintf("curl -sS -i %s %s", bundle, target),
		Revoke: fmt.Sprintf("%s cert revoke --dir %s --identity %s --reason keyCompromise",
			prefix, shellQuote(info.Dir), shellQuote(info.Clients["allowed"].Identity)),
	}
}

// commandEnv is what certgateCommand looks at, injected for tests.
type commandEnv struct {
	exe      string // os.Executable
	lookPath func(string) (string, error)
	getwd    func() (string, error)
}

func osCommandEnv() commandEnv {
	exe, err := os.Executable()
	if err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
	}
	return commandEnv{exe: exe, lookPath: exec.LookPath, getwd: os.Getwd}
}

// certgateCommand says how a pasted command should run certgate: plain
// "certgate" when that is this binary on PATH; the binary's absolute path
// when it is not on PATH; "go run ./cmd/certgate" under "go run" (whose
// binary lives in a temporary go-build directory that is gone when
// quickstart stops) or from any binary not named certgate (a test).
func certgateCommand(env commandEnv) string {
	base := strings.TrimSuffix(filepath.Base(env.exe), ".exe")
	if env.exe == "" || inGoBuildDir(env.exe) || base != "certgate" {
		return goRunCommand(env.getwd)
	}
	if p, err := env.lookPath("certgate"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if sameFile(p, env.exe) {
			return "certgate"
		}
	}
	return shellQuote(env.exe)
}

func inGoBuildDir(exe string) bool {
	for _, part := range strings.Split(filepath.ToSlash(filepath.Dir(exe)), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// certgateModule is the module path goRunCommand looks for.
const certgateModule = "github.com/certgate/certgate"

// goRunCommand is "go run ./cmd/certgate" in the module root, "go run -C
// ROOT ./cmd/certgate" below it, so the command works from where quickstart
// was started.
func goRunCommand(getwd func() (string, error)) string {
	const plain = "go run ./cmd/certgate"
	wd, err := getwd()
	if err != nil {
		return plain
	}
	for d := wd; ; d = filepath.Dir(d) {
		if moduleOf(filepath.Join(d, "go.mod")) == certgateModule {
			if d == wd {
				return plain
			}
			return "go run -C " + shellQuote(d) + " ./cmd/certgate"
		}
		if filepath.Dir(d) == d {
			return plain
		}
	}
}

// moduleOf returns the module path declared in a go.mod file, "" if none.
func moduleOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:@%+=,-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

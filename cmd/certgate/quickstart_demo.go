package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/wire"
)

// demoTokenTTL bounds the demo tokens: they are redeemed a few
// milliseconds after they are minted, and a leftover one is useless soon.
const demoTokenTTL = 5 * time.Minute

// quickstartGatewayName is the gateway's identity path below /gateway/.
const quickstartGatewayName = "quickstart"

type demoSetup struct {
	clients map[string]quickstartClientInfo
	// gatewayToken is the gateway's enrollment token: the gateway redeems
	// it itself, with its host names, as "certgate gateway --token" does.
	gatewayToken string
}

// enrollDemo enrolls, through the running server's API as any operator
// and client would, the two demo clients into DIR/clients/{allowed,denied},
// and mints the token the gateway enrolls itself with. Each run enrolls
// afresh: the allowed client of a previous run may be revoked.
func enrollDemo(ctx context.Context, dir, td string) (demoSetup, error) {
	admin, err := adminClient(dir, "", "")
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
	// The jobs are independent; in parallel they cost one round of
	// handshakes instead of three.
	job := func(path, role string, f func(tok string) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				id, err := identity.New(td, path)
				if err != nil {
					return fmt.Errorf("quickstart: %w", err)
				}
				if role != "" {
					// The demo gateway serves TLS and follows the feed
					// because it is granted the role, as a deployment does.
					// A reused demo directory has it already.
					_, err := admin.GrantRole(ctx, wire.RoleChange{Role: role, Holder: id.String()})
					var ae *apiclient.Error
					if err != nil && !(errors.As(err, &ae) && ae.Code == wire.CodeConflict) {
						return fmt.Errorf("quickstart: grant %s to %s: %w", role, id, err)
					}
				}
				tok, err := admin.CreateRoleToken(ctx, id.String(), role, demoTokenTTL)
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
		job("/demo/"+name, "", func(tok string) error {
			res, err := enroll.Enroll(ctx, enroll.Options{Token: tok, OutDir: out})
			if err != nil {
				return err
			}
			mu.Lock()
			d.clients[name] = quickstartClientInfo{
				Identity: res.Identity.String(), Dir: out,
				Cert: filepath.Join(out, certgatetls.CertFile), Key: filepath.Join(out, certgatetls.KeyFile),
			}
			mu.Unlock()
			return nil
		})
	}
	job(identity.GatewayPrefix+quickstartGatewayName, "gateway", func(tok string) error {
		mu.Lock()
		d.gatewayToken = tok
		mu.Unlock()
		return nil
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

// writeQuickstartGatewayConfig writes DIR/gateway/gateway.yaml: the
// gateway's own identity in DIR/gateway (enrolled from a token with the
// host names clients use, then renewed by the gateway), one route to the
// demo upstream that lets only demo/allowed through, revocations from the
// server's change feed, the access log beside it. The credentials of a
// previous run are removed so the gateway enrolls afresh: its certificate
// may have been revoked, or name other hosts.
func writeQuickstartGatewayConfig(dir, listen, td, serverURL, upstreamURL string) (string, error) {
	q := func(s string) string {
		b, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
		return string(b)
	}
	allowed, err := identity.New(td, "/demo/allowed")
	if err != nil {
		return "", fmt.Errorf("quickstart: %w", err)
	}
	gwDir := filepath.Join(dir, "gateway")
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		return "", fmt.Errorf("quickstart: %w", err)
	}
	// All of the previous identity goes, not only its certificate: a key
	// left alone is a directory enroll refuses (internal/credsdir).
	for _, name := range credsdir.Files {
		if err := os.Remove(filepath.Join(gwDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("quickstart: %w", err)
		}
	}
	dns, ips := gatewayHosts(listen)
	var hosts []string
	for _, h := range dns {
		hosts = append(hosts, q(h))
	}
	for _, ip := range ips {
		hosts = append(hosts, q(ip.String()))
	}
	cfg := fmt.Sprintf(`# Written by "certgate quickstart" on every run; edits are overwritten.
listen: %s
trust_domain: %s
bundle: %s
identity:
  dir: .
  hosts: [%s]
server:
  url: %s
access_log:
  path: access.log
routes:
  - name: demo
    path_prefix: /
    upstream: %s
    allow: [%s]
`, q(listen), q(td), q(filepath.Join(dir, certgatetls.BundleFile)), strings.Join(hosts, ", "), q(serverURL), q(upstreamURL), q(allowed.String()))
	path := filepath.Join(gwDir, "gateway.yaml")
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

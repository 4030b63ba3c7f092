package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
)

// revokeGateway is one gateway process of the run.
type revokeGateway struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRevokeGateway(ctx context.Context, admin, enroller *apiclient.Client, o RevokeOptions, work, upstream string, i int) (*revokeGateway, error) {
	td, bundle := o.Target.TrustDomain, o.Target.Bundle
	g := &revokeGateway{dir: filepath.Join(work, fmt.Sprintf("gw%d", i)), done: make(chan struct{})}
	if err := os.Mkdir(g.dir, 0o700); err != nil {
		return nil, err
	}
	id, err := identity.New(td, fmt.Sprintf("%sbench-%d", identity.GatewayPrefix, i))
	if err != nil {
		return nil, err
	}
	cert, _, err := enrollKey(ctx, admin, enroller, id, "gateway", net.IPv4(127, 0, 0, 1))
	if err != nil {
		return nil, err
	}
	keyPEM, err := pemutil.EncodePrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, err
	}
	var chainPEM []byte
	for _, der := range cert.Certificate {
		c, _ := x509.ParseCertificate(der)
		chainPEM = append(chainPEM, pemutil.EncodeCertificates(c)...)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cert.pem"), chainPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(g.dir, "key.pem"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
trust_domain: %s
bundle: %s
cert: cert.pem
key: key.pem
server:
  url: %s
revocation:
  mode: feed
access_log:
  path: access.log
routes:
  - name: bench
    upstream: %s
    allow: ["spiffe://%s/bench/*"]
`, td, bundle, o.Target.URL, upstream, td)
	cfgPath := filepath.Join(g.dir, "gateway.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(g.dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	g.cmd = exec.Command(o.Certgate, "gateway", "--config", cfgPath)
	g.cmd.Stderr = logf
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("--certgate: %w", err)
	}
	go func() { g.cmd.Wait(); close(g.done) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "certgate gateway listening on https://"); ok {
				addr <- a
			}
		}
	}()
	select {
	case g.addr = <-addr:
		return g, nil
	case <-g.done:
		log, _ := os.ReadFile(filepath.Join(g.dir, "gateway.log"))
		return nil, fmt.Errorf("gateway %d exited: %s\n%s", i, g.cmd.ProcessState, log)
	case <-ctx.Done():
		g.stop()
		return nil, fmt.Errorf("gateway %d did not start: %w", i, ctx.Err())
	}
}

func (g *revokeGateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/loadgen"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/wire"
)

// benchRevokeOptions are the flags of "certgate bench revoke".
type benchRevokeOptions struct {
	dir, server, certgate, work string
	gateways, revocations       int
	timeout                     time.Duration
}

func newBenchRevokeCmd(s streams) *cobra.Command {
	var o benchRevokeOptions
	cmd := &cobra.Command{
		Use:   "revoke --dir DIR [--server URL] [--gateways 5] [--revocations 100]",
		Short: "Measure how fast a revocation reaches every gateway: connections closed, handshakes refused",
		Long: `Starts --gateways "certgate gateway" processes on 127.0.0.1, each with its own
/gateway/ certificate enrolled from the running server and following its
change feed. Enrolls --revocations client certificates and opens one
keep-alive HTTP/1.1 connection per gateway for each (one request proves it).
Then it revokes them one at a time through the admin API and measures, for
each, the time from the revoke call's return until every gateway has closed
the client's connection and refuses a new handshake with its certificate.
Prints p50/p90/p99/max over the revocations and over the single connection
cuts. The gateways are stopped and their files removed at the end; the run
stops after --timeout in any case. It revokes --revocations certificates:
run it against a test CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchRevoke(cmd.Context(), s.out, s.err, o)
		},
	}
	dirFlag(cmd, &o.dir)
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "server URL (default: server.url from the config)")
	f.IntVar(&o.gateways, "gateways", 5, "gateway processes to start")
	f.IntVar(&o.revocations, "revocations", 100, "certificates to enroll and revoke")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "stop the whole run after this long")
	f.StringVar(&o.certgate, "certgate", "", "certgate binary to run the gateways with (default: this one)")
	f.StringVar(&o.work, "work-dir", "", "parent of the gateways' temporary directory (default: the system's)")
	return cmd
}

// benchGateway is one gateway process of the run.
type benchGateway struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// victimConn is a keep-alive connection of a victim at one gateway;
// closed receives when the gateway closed it.
type victimConn struct {
	conn   *tls.Conn
	closed chan time.Time
}

type victim struct {
	cert   tls.Certificate
	serial string
	conns  []*victimConn // by gateway
}

func runBenchRevoke(ctx context.Context, out, errw io.Writer, o benchRevokeOptions) error {
	if err := needDir(o.dir); err != nil {
		return err
	}
	switch {
	case o.gateways < 1 || o.gateways > 50:
		return fmt.Errorf("--gateways: %d: need 1 to 50", o.gateways)
	case o.revocations < 1 || o.revocations > 10000:
		return fmt.Errorf("--revocations: %d: need 1 to 10000", o.revocations)
	case o.timeout <= 0:
		return fmt.Errorf("--timeout: %s must be positive", o.timeout)
	}
	if o.certgate == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--certgate: %w", err)
		}
		o.certgate = exe
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cert, roots, cfg, err := cadir.AdminCredentials(o.dir)
	if err != nil {
		return err
	}
	if o.server == "" {
		o.server = cfg.Listen.URL
	}
	admin, err := apiclient.New(apiclient.Options{ServerURL: o.server, Roots: roots, Certificate: &cert, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer admin.CloseIdleConnections()
	enroller, err := apiclient.New(apiclient.Options{ServerURL: o.server, Roots: roots, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer enroller.CloseIdleConnections()
	work, err := os.MkdirTemp(o.work, "certgate-bench-revoke-")
	if err != nil {
		return fmt.Errorf("--work-dir: %w", err)
	}
	defer os.RemoveAll(work)
	bundlePath := cfg.Path(cfg.Admin.Bundle)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer upstream.Close()

	fmt.Fprintf(errw, "starting %d gateways following %s...\n", o.gateways, o.server)
	gws := make([]*benchGateway, o.gateways)
	defer func() {
		for _, g := range gws {
			if g != nil {
				g.stop()
			}
		}
	}()
	for i := range gws {
		gws[i], err = startBenchGateway(ctx, admin, enroller, o, cfg.TrustDomain, work, bundlePath, upstream.URL, i)
		if err != nil {
			return err
		}
	}

	fmt.Fprintf(errw, "enrolling %d clients and opening %d keep-alive connections...\n", o.revocations, o.revocations*o.gateways)
	victims := make([]*victim, o.revocations)
	err = parallelDo(ctx, o.revocations, 8, func(i int) error {
		v, err := enrollVictim(ctx, admin, enroller, cfg.TrustDomain, i)
		if err != nil {
			return err
		}
		for _, g := range gws {
			c, err := openVictimConn(ctx, g.addr, roots, v.cert)
			if err != nil {
				return fmt.Errorf("client %d at gateway %s: %w", i, g.addr, err)
			}
			v.conns = append(v.conns, c)
		}
		victims[i] = v
		return nil
	})
	defer func() {
		for _, v := range victims {
			if v != nil {
				for _, c := range v.conns {
					c.conn.Close()
				}
			}
		}
	}()
	if err != nil {
		return err
	}

	fmt.Fprintf(errw, "revoking %d certificates one at a time...\n", len(victims))
	var total, cuts loadgen.Histogram
	early := 0
	for i, v := range victims {
		if _, err := admin.Revoke(ctx, wire.RevokeRequest{Serial: v.serial, Reason: "keyCompromise"}); err != nil {
			return fmt.Errorf("revoke %d: %w", i, err)
		}
		returned := time.Now()
		lat, cutLats, err := v.waitEnforced(ctx, gws, roots, returned)
		if err != nil {
			return fmt.Errorf("revocation %d (serial %s): %w", i, v.serial, err)
		}
		total.Add(lat)
		for _, d := range cutLats {
			// The feed can deliver before the admin reads the answer.
			if d < 0 {
				early++
				d = 0
			}
			cuts.Add(d)
		}
	}

	fmt.Fprintf(out, "revocation propagation: %d certgate gateway processes following %s, %d revocations, one keep-alive connection per gateway per client\n", o.gateways, o.server, total.Count())
	fmt.Fprintf(out, "from the revoke call's return until every gateway closed the connection and refused a new handshake:\n")
	fmt.Fprintf(out, "  p50 %s  p90 %s  p99 %s  max %s\n", roundLatency(total.Quantile(.5)), roundLatency(total.Quantile(.9)), roundLatency(total.Quantile(.99)), roundLatency(total.Max()))
	fmt.Fprintf(out, "each connection closed (%d): p50 %s  p90 %s  p99 %s  max %s (%d closed before the revoke call returned, counted as 0)\n",
		cuts.Count(), roundLatency(cuts.Quantile(.5)), roundLatency(cuts.Quantile(.9)), roundLatency(cuts.Quantile(.99)), roundLatency(cuts.Max()), early)
	return nil
}

func roundLatency(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// parallelDo runs fn(0..n-1) on par goroutines and returns the first error.
func parallelDo(ctx context.Context, n, par int, fn func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := 0
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || ctx.Err() != nil
				mu.Unlock()
				if stop || i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// enrollKey makes a P-256 key and enrolls it for id with a one-time token;
// ips go into the CSR (a gateway's serving address).
func enrollKey(ctx context.Context, admin, enroller *apiclient.Client, id identity.ID, ips ...net.IP) (tls.Certificate, string, error) {
	tok, err := admin.CreateToken(ctx, id.String(), 10*time.Minute)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("token for %s: %w", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}, IPAddresses: ips}, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	resp, err := enroller.Enroll(ctx, tok.Token, string(pemutil.EncodeCSR(der)))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("enroll %s: %w", id, err)
	}
	chain, err := pemutil.ParseCertificates([]byte(resp.Certificate + resp.Chain))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("enroll %s: %w", id, err)
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, chain[0].SerialNumber.Text(16), nil
}

func enrollVictim(ctx context.Context, admin, enroller *apiclient.Client, td string, i int) (*victim, error) {
	id, err := identity.New(td, fmt.Sprintf("/bench/revoke-%d-%d", time.Now().UnixNano(), i))
	if err != nil {
		return nil, err
	}
	cert, serial, err := enrollKey(ctx, admin, enroller, id)
	if err != nil {
		return nil, err
	}
	return &victim{cert: cert, serial: serial}, nil
}

func startBenchGateway(ctx context.Context, admin, enroller *apiclient.Client, o benchRevokeOptions, td, work, bundle, upstream string, i int) (*benchGateway, error) {
	g := &benchGateway{dir: filepath.Join(work, fmt.Sprintf("gw%d", i)), done: make(chan struct{})}
	if err := os.Mkdir(g.dir, 0o700); err != nil {
		return nil, err
	}
	id, err := identity.New(td, fmt.Sprintf("/gateway/bench-%d", i))
	if err != nil {
		return nil, err
	}
	cert, _, err := enrollKey(ctx, admin, enroller, id, net.IPv4(127, 0, 0, 1))
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
`, td, bundle, o.server, upstream, td)
	cfgPath := filepath.Join(g.dir, "gateway.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(g.dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	g.cmd = exec.Command(o.certgate, "gateway", "--config", cfgPath)
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

func (g *benchGateway) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

// openVictimConn opens a keep-alive connection, proves it with a request,
// and watches it for the gateway's close.
func openVictimConn(ctx context.Context, addr string, roots *x509.CertPool, cert tls.Certificate) (*victimConn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: victimTLS(roots, cert)}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := nc.(*tls.Conn)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("request answered %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	vc := &victimConn{conn: c, closed: make(chan time.Time, 1)}
	go func() {
		// The gateway sends nothing unasked: the read ends when it closes.
		br.ReadByte()
		vc.closed <- time.Now()
	}()
	return vc, nil
}

func victimTLS(roots *x509.CertPool, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
}

// waitEnforced waits until every gateway has closed v's connection and
// refuses its handshake, and returns the time that took from returned
// (the slowest gateway) and each connection's close time.
func (v *victim) waitEnforced(ctx context.Context, gws []*benchGateway, roots *x509.CertPool, returned time.Time) (time.Duration, []time.Duration, error) {
	type result struct {
		done, cut time.Duration
		err       error
	}
	results := make(chan result, len(gws))
	for i, g := range gws {
		go func() {
			var at time.Time
			select {
			case at = <-v.conns[i].closed:
			case <-time.After(10 * time.Second):
				results <- result{err: fmt.Errorf("gateway %s kept the connection open for 10 s", g.addr)}
				return
			case <-ctx.Done():
				results <- result{err: ctx.Err()}
				return
			}
			cut := at.Sub(returned)
			for {
				err := handshakeRefused(ctx, g.addr, victimTLS(roots, v.cert))
				if err == nil {
					results <- result{done: time.Since(returned), cut: cut}
					return
				}
				if time.Since(returned) > 10*time.Second || ctx.Err() != nil {
					results <- result{err: fmt.Errorf("gateway %s: %w", g.addr, err)}
					return
				}
			}
		}()
	}
	var slowest time.Duration
	var cuts []time.Duration
	var first error
	for range gws {
		r := <-results
		if r.err != nil && first == nil {
			first = r.err
		}
		slowest = max(slowest, r.done)
		cuts = append(cuts, r.cut)
	}
	return slowest, cuts, first
}

// handshakeRefused returns nil when the gateway refuses the handshake
// (with TLS 1.3 the client learns at its first read), and an error saying
// what happened otherwise.
func handshakeRefused(ctx context.Context, addr string, tc *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), "bad certificate") {
			return nil
		}
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, "GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")
	_, err = nc.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "bad certificate") {
		return nil
	}
	if err == nil {
		return errors.New("the revoked certificate's handshake was accepted")
	}
	return err
}

package bench

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
	"strings"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/wire"
)

// RevokeOptions configures a revocation propagation run (`certgate bench
// revoke`): Gateways "certgate gateway" processes on 127.0.0.1, each with
// its own /gateway/ certificate enrolled from the server and following its
// change feed; Revocations client certificates, each with one keep-alive
// HTTP/1.1 connection per gateway, revoked one at a time. Errors about a
// field name the command-line flag that sets it.
type RevokeOptions struct {
	Target      Target
	Gateways    int           // gateway processes to start, 1 to 50
	Revocations int           // certificates to enroll and revoke, 1 to 10,000
	Timeout     time.Duration // the whole run stops after this long
	// Certgate is the certgate binary the gateways run (default: this
	// process's executable).
	Certgate string
	// WorkDir is the parent of the gateways' temporary directory (default:
	// the system's).
	WorkDir string
	Log     io.Writer // progress messages; nil discards them
}

// Check returns the first problem with o's settings (Target aside).
func (o RevokeOptions) Check() error {
	switch {
	case o.Gateways < 1 || o.Gateways > 50:
		return fmt.Errorf("--gateways: %d: need 1 to 50", o.Gateways)
	case o.Revocations < 1 || o.Revocations > 10000:
		return fmt.Errorf("--revocations: %d: need 1 to 10000", o.Revocations)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout: %s must be positive", o.Timeout)
	}
	return nil
}

// RevokeResult is what a revocation run measured.
type RevokeResult struct {
	Gateways int
	Server   string
	// Total is, per revocation, the time from the revoke call's return
	// until every gateway had closed the client's connection and refused a
	// new handshake with its certificate.
	Total Histogram
	// Cuts is, per connection, the time from the revoke call's return
	// until the gateway closed it; Early of them closed before the call
	// returned (the feed can deliver before the admin reads the answer)
	// and count as 0.
	Cuts  Histogram
	Early int
}

// Print writes the figures in plain words.
func (r *RevokeResult) Print(w io.Writer) error {
	_, err := fmt.Fprintf(w, "revocation propagation: %d certgate gateway processes following %s, %d revocations, one keep-alive connection per gateway per client\n"+
		"from the revoke call's return until every gateway closed the connection and refused a new handshake:\n"+
		"  p50 %s  p90 %s  p99 %s  max %s\n"+
		"each connection closed (%d): p50 %s  p90 %s  p99 %s  max %s (%d closed before the revoke call returned, counted as 0)\n",
		r.Gateways, r.Server, r.Total.Count(),
		round(r.Total.Quantile(.5)), round(r.Total.Quantile(.9)), round(r.Total.Quantile(.99)), round(r.Total.Max()),
		r.Cuts.Count(), round(r.Cuts.Quantile(.5)), round(r.Cuts.Quantile(.9)), round(r.Cuts.Quantile(.99)), round(r.Cuts.Max()), r.Early)
	return err
}

// RunRevoke starts the gateways, enrolls the clients and opens their
// connections, then revokes them one at a time through the admin API and
// measures, for each, how long until every gateway enforces it. The
// gateways are stopped and their files removed at the end.
func RunRevoke(ctx context.Context, o RevokeOptions) (*RevokeResult, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.Certgate == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--certgate: %w", err)
		}
		o.Certgate = exe
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	t := o.Target
	admin, err := t.admin(30 * time.Second)
	if err != nil {
		return nil, err
	}
	defer admin.CloseIdleConnections()
	enroller, err := apiclient.New(apiclient.Options{ServerURL: t.URL, Roots: t.Roots, Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	defer enroller.CloseIdleConnections()
	work, err := os.MkdirTemp(o.WorkDir, "certgate-bench-revoke-")
	if err != nil {
		return nil, fmt.Errorf("--work-dir: %w", err)
	}
	defer os.RemoveAll(work)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer upstream.Close()

	fmt.Fprintf(log, "starting %d gateways following %s...\n", o.Gateways, t.URL)
	gws := make([]*revokeGateway, o.Gateways)
	defer func() {
		for _, g := range gws {
			if g != nil {
				g.stop()
			}
		}
	}()
	for i := range gws {
		if gws[i], err = startRevokeGateway(ctx, admin, enroller, o, work, upstream.URL, i); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(log, "enrolling %d clients and opening %d keep-alive connections...\n", o.Revocations, o.Revocations*o.Gateways)
	victims := make([]*victim, o.Revocations)
	err = parallel(ctx, o.Revocations, 8, func(i int) error {
		v, err := enrollVictim(ctx, admin, enroller, t.TrustDomain, i)
		if err != nil {
			return err
		}
		victims[i] = v
		for _, g := range gws {
			c, err := openVictimConn(ctx, g.addr, t.Roots, v.cert)
			if err != nil {
				return fmt.Errorf("client %d at gateway %s: %w", i, g.addr, err)
			}
			v.conns = append(v.conns, c)
		}
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
		return nil, err
	}

	fmt.Fprintf(log, "revoking %d certificates one at a time...\n", len(victims))
	res := &RevokeResult{Gateways: o.Gateways, Server: t.URL}
	for i, v := range victims {
		if _, err := admin.Revoke(ctx, wire.RevokeRequest{Serial: v.serial, Reason: "keyCompromise"}); err != nil {
			return nil, fmt.Errorf("revoke %d: %w", i, err)
		}
		returned := time.Now()
		lat, cutLats, err := v.waitEnforced(ctx, gws, t.Roots, returned)
		if err != nil {
			return nil, fmt.Errorf("revocation %d (serial %s): %w", i, v.serial, err)
		}
		res.Total.Add(lat)
		for _, d := range cutLats {
			if d < 0 {
				res.Early++
				d = 0
			}
			res.Cuts.Add(d)
		}
	}
	return res, nil
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

// enrollKey makes a P-256 key and enrolls it for id with a one-time token;
// ips go into the CSR (a gateway's serving address).
func enrollKey(ctx context.Context, admin, enroller *apiclient.Client, id identity.ID, role string, ips ...net.IP) (tls.Certificate, string, error) {
	if role != "" {
		// A gateway serves TLS and follows the feed because it holds the
		// role; a second bench run on the same server finds it granted.
		_, err := admin.GrantRole(ctx, wire.RoleChange{Role: role, Holder: id.String()})
		var ae *apiclient.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == wire.CodeConflict) {
			return tls.Certificate{}, "", fmt.Errorf("grant %s to %s: %w", role, id, err)
		}
	}
	tok, err := admin.CreateRoleToken(ctx, id.String(), role, 10*time.Minute)
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
	cert, serial, err := enrollKey(ctx, admin, enroller, id, "")
	if err != nil {
		return nil, err
	}
	return &victim{cert: cert, serial: serial}, nil
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
func (v *victim) waitEnforced(ctx context.Context, gws []*revokeGateway, roots *x509.CertPool, returned time.Time) (time.Duration, []time.Duration, error) {
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

// handshakeRefused returns nil when the gateway refuses the revoked
// certificate: with a TLS alert (with TLS 1.3 the client learns at its
// first read), or, as the gateway's HTTP listener does, by answering 403
// with "revoked" as the JSON error code; and an error saying what happened
// otherwise.
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
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		if strings.Contains(err.Error(), "bad certificate") {
			return nil
		}
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), `"code":"revoked"`) {
		return nil
	}
	return fmt.Errorf("the revoked certificate was served: %s %s", resp.Status, body)
}

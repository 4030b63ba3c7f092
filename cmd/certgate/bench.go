package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/pemutil"
)

func newBenchCmd(s streams) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench --addr HOST:PORT --cert C --key K --cacert B [--compare HOST:PORT]",
		Short: "Load-test an mTLS endpoint: full handshakes, resumed handshakes or keep-alive requests per second",
		Long: `Load-test an mTLS endpoint with a client certificate. Modes:
  full       a new connection and full handshake per request
  resumed    a new connection resuming a TLS session per request
  keepalive  requests on --concurrency long-lived connections
With --compare the same load runs against a second address in the same run,
with the same certificate. Pin the servers and the load generator to
different cores (taskset -c 0 certgate gateway ...; taskset -c 1 certgate
bench ...). 'certgate bench baseline' runs the bare crypto/tls server and
httputil.ReverseProxy baseline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd.Context(), s.out, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "", "address to load")
	f.StringVar(&o.compare, "compare", "", "second address to load with the same client, for comparison")
	f.StringVar(&o.cert, "cert", "", "client certificate chain PEM")
	f.StringVar(&o.key, "key", "", "client key PEM")
	f.StringVar(&o.cacert, "cacert", "", "roots that verify the server")
	f.StringVar(&o.serverName, "server-name", "localhost", "name to verify in the server certificate")
	f.StringSliceVar(&o.modes, "mode", []string{"full", "resumed", "keepalive"}, "modes to run: full, resumed, keepalive")
	f.StringVar(&o.path, "path", "/", "request path")
	f.DurationVar(&o.duration, "duration", 5*time.Second, "duration of each run")
	f.IntVar(&o.concurrency, "concurrency", 16, "concurrent connections")
	cmd.AddCommand(newBenchBaselineCmd(s), newBenchEnrollCmd(s), newBenchRevokeCmd(s), newBenchRenewCmd(s), newBenchStormCmd(s))
	return cmd
}

type benchOptions struct {
	addr, compare, cert, key, cacert, serverName, path string
	modes                                              []string
	duration                                           time.Duration
	concurrency                                        int
}

type benchResult struct {
	ops, errs  int64
	notResumed int64 // resumed mode: connections that did a full handshake
	elapsed    time.Duration
	p50, p99   time.Duration
	firstErr   error
}

func runBench(ctx context.Context, w io.Writer, o benchOptions) error {
	switch {
	case o.addr == "":
		return errors.New("--addr: no address given")
	case o.cert == "" || o.key == "":
		return errors.New("--cert, --key: a client certificate and key are required")
	case o.cacert == "":
		return errors.New("--cacert: no roots given to verify the server")
	case o.concurrency < 1:
		return fmt.Errorf("--concurrency: must be at least 1, got %d", o.concurrency)
	case o.duration <= 0:
		return fmt.Errorf("--duration: must be positive, got %s", o.duration)
	}
	for _, m := range o.modes {
		if !slices.Contains([]string{"full", "resumed", "keepalive"}, m) {
			return fmt.Errorf("--mode: unknown mode %q (full, resumed, keepalive)", m)
		}
	}
	cert, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return fmt.Errorf("--cert/--key: %w", err)
	}
	roots, err := loadPool(o.cacert)
	if err != nil {
		return fmt.Errorf("--cacert: %w", err)
	}
	targets := []string{o.addr}
	if o.compare != "" {
		targets = append(targets, o.compare)
	}
	fmt.Fprintf(w, "%-10s %-22s %10s %12s %10s %10s %8s\n", "mode", "target", "ops", "ops/s", "p50", "p99", "errors")
	for _, mode := range o.modes {
		for _, target := range targets {
			tc := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: o.serverName, NextProtos: []string{"http/1.1"}}
			if mode == "resumed" {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(o.concurrency * 2)
			}
			r := benchRun(ctx, target, mode, o, tc)
			fmt.Fprintf(w, "%-10s %-22s %10d %12.0f %10s %10s %8d\n", mode, target, r.ops,
				float64(r.ops)/r.elapsed.Seconds(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs)
			if r.notResumed > 0 {
				fmt.Fprintf(w, "  %d connections did a full handshake (no session to resume yet)\n", r.notResumed)
			}
			if r.firstErr != nil {
				fmt.Fprintf(w, "  first error: %v\n", r.firstErr)
			}
		}
	}
	return nil
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// benchRun drives one mode against one address for o.duration. Dials do
// not take ctx, so the end of the run is not counted as a dial error.
func benchRun(ctx context.Context, addr, mode string, o benchOptions, tc *tls.Config) benchResult {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var ops, errs, notResumed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var lat []time.Duration
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	closeReq := []byte("GET " + o.path + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	keepReq := []byte("GET " + o.path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	start := time.Now()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
			if mode == "keepalive" {
				for ctx.Err() == nil {
					c, err := d.DialContext(context.Background(), "tcp", addr)
					if err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						continue
					}
					br := bufio.NewReader(c)
					for ctx.Err() == nil {
						t0 := time.Now()
						if err := exchange(c, br, keepReq); err != nil {
							if ctx.Err() == nil {
								fail(err)
							}
							break
						}
						local = append(local, time.Since(t0))
						ops.Add(1)
					}
					c.Close()
				}
				return
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				c, err := d.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				err = exchange(c, bufio.NewReader(c), closeReq)
				resumed := c.(*tls.Conn).ConnectionState().DidResume
				c.Close()
				switch {
				case err != nil:
					if ctx.Err() == nil {
						fail(err)
					}
				default:
					if mode == "resumed" && !resumed {
						notResumed.Add(1)
					}
					local = append(local, time.Since(t0))
					ops.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := benchResult{ops: ops.Load(), errs: errs.Load(), notResumed: notResumed.Load(), elapsed: time.Since(start), firstErr: firstErr}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// exchange writes one request and reads the whole response. Any complete
// response counts: a 403 from a route check is as much work for the
// handshake as a 200.
func exchange(c net.Conn, br *bufio.Reader, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return err
}

func newBenchBaselineCmd(s streams) *cobra.Command {
	var o baselineOptions
	cmd := &cobra.Command{
		Use:   "baseline --listen ADDR --cert C --key K --bundle B [--upstream URL]",
		Short: "Serve the comparison baseline: crypto/tls with RequireAndVerifyClientCert and httputil.ReverseProxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchBaseline(cmd.Context(), o, func(addr string) {
				fmt.Fprintf(s.out, "baseline listening on %s\n", addr)
			})
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:9443", "address to listen on")
	cmd.Flags().StringVar(&o.cert, "cert", "", "server certificate chain PEM")
	cmd.Flags().StringVar(&o.key, "key", "", "server key PEM")
	cmd.Flags().StringVar(&o.bundle, "bundle", "", "roots that verify client certificates")
	cmd.Flags().StringVar(&o.upstream, "upstream", "", "http:// upstream to reverse-proxy to (default: answer 200 itself)")
	return cmd
}

type baselineOptions struct {
	listen, cert, key, bundle, upstream string
}

func runBenchBaseline(ctx context.Context, o baselineOptions, ready func(addr string)) error {
	if o.cert == "" || o.key == "" || o.bundle == "" {
		return errors.New("--cert, --key, --bundle: all are required")
	}
	cert, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return fmt.Errorf("--cert/--key: %w", err)
	}
	pool, err := loadPool(o.bundle)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	if o.upstream != "" {
		u, err := url.Parse(o.upstream)
		if err != nil || !strings.HasPrefix(o.upstream, "http://") {
			return fmt.Errorf("--upstream: %q is not an http:// URL", o.upstream)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
		h = rp
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
			NextProtos: []string{"http/1.1"},
		},
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	ready(ln.Addr().String())
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

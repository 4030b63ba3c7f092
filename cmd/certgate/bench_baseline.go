package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/tlspolicy"
)

func newBenchBaselineCmd(s streams) *cobra.Command {
	var o baselineOptions
	cmd := &cobra.Command{
		Use:   "baseline --listen ADDR --cert C --key K --bundle B [--upstream URL [--proxy-prefix /bench]]",
		Short: "Serve the comparison baseline: crypto/tls with RequireAndVerifyClientCert and httputil.ReverseProxy",
		Long: `Serve what the gateway is measured against: net/http over crypto/tls with
ClientAuth RequireAndVerifyClientCert (x509.Verify of the client's chain on
every full handshake) and, with --upstream, httputil.ReverseProxy for the
paths under --proxy-prefix. Other paths are answered by the baseline itself:
403 with --upstream (as the gateway answers a path no route allows), 200
without. It uses certgate's TLS policy (TLS 1.2 minimum, the same suites as
the gateway) and default session tickets.`,
		Args: cobra.NoArgs,
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
	cmd.Flags().StringVar(&o.proxyPrefix, "proxy-prefix", "/", "with --upstream: the path prefix that is proxied; other paths get 403")
	return cmd
}

type baselineOptions struct {
	listen, cert, key, bundle, upstream, proxyPrefix string
}

func runBenchBaseline(ctx context.Context, o baselineOptions, ready func(addr string)) error {
	if o.cert == "" || o.key == "" || o.bundle == "" {
		return errors.New("--cert, --key, --bundle: all are required")
	}
	if o.proxyPrefix == "" {
		o.proxyPrefix = "/"
	}
	if !strings.HasPrefix(o.proxyPrefix, "/") {
		return fmt.Errorf("--proxy-prefix: %q does not start with /", o.proxyPrefix)
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
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, o.proxyPrefix) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			rp.ServeHTTP(w, r)
		})
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: tlspolicy.Apply(&tls.Config{
			Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
			NextProtos: []string{"http/1.1"},
		}),
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

func newBenchUpstreamCmd(s streams) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "upstream --listen ADDR",
		Short: "Serve a plain HTTP upstream for the proxying benchmark: 200 \"ok\" to every request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchUpstream(cmd.Context(), listen, func(addr string) {
				fmt.Fprintf(s.out, "upstream listening on %s\n", addr)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on")
	return cmd
}

func runBenchUpstream(ctx context.Context, listen string, ready func(addr string)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	ready(ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}

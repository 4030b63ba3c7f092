package bench

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

	"github.com/certgate/certgate/internal/tlspolicy"
)

// BaselineOptions configures the comparison baseline (`certgate bench
// baseline`): net/http over crypto/tls with ClientAuth
// RequireAndVerifyClientCert (x509.Verify of the client's chain on every
// full handshake) and, with Upstream, httputil.ReverseProxy for the paths
// under ProxyPrefix. Other paths are answered by the baseline itself: 403
// with Upstream (as the gateway answers a path no route allows), 200
// without. It uses certgate's TLS policy (TLS 1.2 minimum, the same suites
// as the gateway) and default session tickets.
type BaselineOptions struct {
	Listen            string // address to listen on
	Cert, Key, Bundle string // server chain, key, and the roots of client certificates (PEM files)
	Upstream          string // http:// URL to reverse-proxy to; "" answers 200 itself
	ProxyPrefix       string // with Upstream: the proxied path prefix ("/" if empty)
	// Bare serves crypto/tls and a minimal HTTP/1.1 responder instead of
	// net/http: every request is answered 403 (bare.go). Upstream must be
	// empty.
	Bare bool
	// Metrics, if set, is an address where /metrics serves the Go
	// runtime's memory gauges under the Prometheus Go collector's names,
	// as the gateway's metrics listener has them: the idle-connection
	// benchmark reads heap and stacks from it (runtime_metrics.go).
	Metrics string
}

// ServeBaseline serves the baseline until ctx ends. ready is called with
// the bound address once it listens (and the metrics listener, if any,
// too).
func ServeBaseline(ctx context.Context, o BaselineOptions, ready func(addr string)) error {
	if o.Cert == "" || o.Key == "" || o.Bundle == "" {
		return errors.New("--cert, --key, --bundle: all are required")
	}
	if o.Bare && o.Upstream != "" {
		return errors.New("--bare: answers every request itself; --upstream is not used")
	}
	if o.ProxyPrefix == "" {
		o.ProxyPrefix = "/"
	}
	if !strings.HasPrefix(o.ProxyPrefix, "/") {
		return fmt.Errorf("--proxy-prefix: %q does not start with /", o.ProxyPrefix)
	}
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return fmt.Errorf("--cert/--key: %w", err)
	}
	pool, err := loadPool(o.Bundle)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	if o.Upstream != "" {
		u, err := url.Parse(o.Upstream)
		if err != nil || !strings.HasPrefix(o.Upstream, "http://") {
			return fmt.Errorf("--upstream: %q is not an http:// URL", o.Upstream)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, o.ProxyPrefix) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			rp.ServeHTTP(w, r)
		})
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if o.Metrics != "" {
		if err := serveRuntimeMetrics(ctx, o.Metrics); err != nil {
			ln.Close()
			return fmt.Errorf("--metrics: %w", err)
		}
	}
	tc := tlspolicy.Apply(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		NextProtos: []string{"http/1.1"},
	})
	if o.Bare {
		ready(ln.Addr().String())
		return serveBare(ctx, ln, tc)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         tc,
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
		Short: "Serve a minimal HTTP/1.1 upstream for the proxying benchmark: 200 \"ok\" to every request",
		Long: `Serve the upstream of the proxying benchmark: a keep-alive HTTP/1.1 server
that answers every request with the same 200 "ok\n" (Content-Length 3),
reading request heads and Content-Length bodies and nothing else (a
chunked request body is answered 501 and the connection closed). It is
written for as little CPU per request as possible, so that the load
generator and the upstream sharing one core load the proxy under test,
not themselves.`,
		Args: cobra.NoArgs,
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
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	closeAll := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	ready(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			closeAll()
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("upstream: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveUpstreamConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

var (
	upstreamOK       = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")
	upstreamChunked  = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	upstreamBadFrame = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// serveUpstreamConn answers the requests of one connection until it ends.
func serveUpstreamConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		length, chunked, closeAfter, err := readRequestHead(br)
		switch {
		case err != nil:
			if !errors.Is(err, io.EOF) {
				c.Write(upstreamBadFrame)
			}
			return
		case chunked:
			c.Write(upstreamChunked)
			return
		}
		if length > 0 {
			if _, err := br.Discard(int(length)); err != nil {
				return
			}
		}
		if _, err := c.Write(upstreamOK); err != nil || closeAfter {
			return
		}
	}
}

// readRequestHead reads one request head and returns its body framing and
// whether the client asked to close. It ends with io.EOF at a clean end of
// the connection.
func readRequestHead(br *bufio.Reader) (length int64, chunked, closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return 0, false, false, io.EOF
		}
		return 0, false, false, fmt.Errorf("reading the request line: %w", err)
	}
	if !bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte(" HTTP/1.1")) {
		closeAfter = true // HTTP/1.0: no keep-alive unless asked, which is not worth supporting here
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, fmt.Errorf("reading the request head: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return length, chunked, closeAfter, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = closeAfter || bytes.EqualFold(value, []byte("close"))
		}
	}
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/bench"
)

func newBenchBaselineCmd(s streams) *cobra.Command {
	var o bench.BaselineOptions
	cmd := &cobra.Command{
		Use:   "baseline --listen ADDR --cert C --key K --bundle B [--upstream URL [--proxy-prefix /bench]]",
		Short: "Serve the comparison baseline: crypto/tls with RequireAndVerifyClientCert and httputil.ReverseProxy",
		Long: `Serve what the gateway is measured against: net/http over crypto/tls with
ClientAuth RequireAndVerifyClientCert (x509.Verify of the client's chain on
every full handshake) and, with --upstream, httputil.ReverseProxy for the
paths under --proxy-prefix. Other paths are answered by the baseline itself:
403 with --upstream (as the gateway answers a path no route allows), 200
without. It uses certgate's TLS policy (TLS 1.2 minimum, the same suites as
the gateway) and default session tickets.

With --bare it serves crypto/tls with RequireAndVerifyClientCert and only a
minimal HTTP/1.1 responder above it (no net/http): every request is
answered 403 on its keep-alive connection. That is the cheapest Go server
of a handshake, the peer the gateway's handshakes are measured against.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.ServeBaseline(cmd.Context(), o, func(addr string) {
				fmt.Fprintf(s.out, "baseline listening on %s\n", addr)
			})
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:9443", "address to listen on")
	cmd.Flags().StringVar(&o.Cert, "cert", "", "server certificate chain PEM")
	cmd.Flags().StringVar(&o.Key, "key", "", "server key PEM")
	cmd.Flags().StringVar(&o.Bundle, "bundle", "", "roots that verify client certificates")
	cmd.Flags().StringVar(&o.Upstream, "upstream", "", "http:// upstream to reverse-proxy to (default: answer 200 itself)")
	cmd.Flags().StringVar(&o.ProxyPrefix, "proxy-prefix", "/", "with --upstream: the path prefix that is proxied; other paths get 403")
	cmd.Flags().StringVar(&o.Metrics, "metrics", "", "address where /metrics serves the Go runtime's metrics, as the gateway's metrics listener (for 'certgate bench idle')")
	cmd.Flags().BoolVar(&o.Bare, "bare", false, "crypto/tls and a minimal HTTP/1.1 responder answering 403 to every request, no net/http")
	return cmd
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
			return bench.ServeUpstream(cmd.Context(), listen, func(addr string) {
				fmt.Fprintf(s.out, "upstream listening on %s\n", addr)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on")
	return cmd
}

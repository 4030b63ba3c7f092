package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/pemutil"
)

// errDenied makes `policy test` exit non-zero when the request would be
// refused, so it can gate a deployment.
var errDenied = errors.New("policy: the gateway would refuse this request")

func newPolicyCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check gateway route rules before deploying them",
		Args:  cobra.NoArgs,
	}
	var o policyTestOptions
	test := &cobra.Command{
		Use:   "test --config gateway.yaml --cert CERT [--method M] [--path P] [--host H]",
		Short: "Say which route a request matches and whether the certificate's identity may pass, and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPolicyTest(s.out, o, time.Now())
		},
	}
	test.Flags().StringVar(&o.config, "config", "", "gateway config file")
	test.Flags().StringVar(&o.cert, "cert", "", "client certificate PEM (leaf first, then intermediates)")
	test.Flags().StringVar(&o.method, "method", "GET", "request method")
	test.Flags().StringVar(&o.path, "path", "/", "request target as a client sends it (path and query); the gateway's canonical form is shown")
	test.Flags().StringVar(&o.host, "host", "", "request host (default: any)")
	cmd.AddCommand(test)
	return cmd
}

type policyTestOptions struct {
	config, cert, method, path, host string
}

func runPolicyTest(w io.Writer, o policyTestOptions, now time.Time) error {
	if o.config == "" {
		return errors.New("--config: no gateway config given")
	}
	if o.cert == "" {
		return errors.New("--cert: no certificate given")
	}
	if !strings.HasPrefix(o.path, "/") {
		return fmt.Errorf("--path: %q must start with '/'", o.path)
	}
	cfg, err := gateway.LoadConfig(o.config)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(o.cert)
	if err != nil {
		return fmt.Errorf("--cert: %w", err)
	}
	chain, err := pemutil.ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("--cert %s: %w", o.cert, err)
	}
	ex, err := gateway.Explain(cfg, chain, now, o.host, o.method, o.path)
	if err != nil {
		return err
	}
	id := ex.Identity
	if id == "" {
		id = "(no SPIFFE ID)"
	}
	fmt.Fprintf(w, "certificate:  %s serial %s, valid %s to %s\n", id, ex.Leaf.SerialNumber.Text(16),
		ex.Leaf.NotBefore.UTC().Format(time.RFC3339), ex.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if ex.Refused != nil {
		fmt.Fprintf(w, "handshake:    refused (%s): %v\n", ex.Refused.Reason, ex.Refused.Err)
	} else {
		fmt.Fprintf(w, "handshake:    ok (revocation not checked)\n")
	}
	host := ex.Host
	if host == "" {
		host = "*"
	}
	fmt.Fprintf(w, "request:      %s %s %s\n", ex.Method, host, ex.Path)
	d := ex.Decision
	if ex.BadRequest != nil {
		fmt.Fprintf(w, "route:        not consulted\n")
		fmt.Fprintf(w, "decision:     deny (%s: %s; the gateway answers %d before any route is consulted)\n", ex.BadRequest.Reason, ex.BadRequest.Msg, ex.BadRequest.Status)
		return errDenied
	}
	if d.Route != nil {
		fmt.Fprintf(w, "route:        %s (%s)\n", d.Route.Name, describeRoute(d.Route))
	} else {
		fmt.Fprintf(w, "route:        none\n")
	}
	switch {
	case ex.Refused != nil:
		fmt.Fprintf(w, "decision:     deny (the handshake fails before any route is consulted)\n")
	case d.Allowed:
		fmt.Fprintf(w, "decision:     allow (matched %s)\n", d.Matched)
	case d.Reason == authz.ReasonNoRoute:
		fmt.Fprintf(w, "decision:     deny (no_route: no route matches this request; the gateway denies by default)\n")
	default:
		fmt.Fprintf(w, "decision:     deny (%s: %s is not in the route's allow list)\n", d.Reason, id)
	}
	if ex.Refused != nil || !d.Allowed {
		return errDenied
	}
	return nil
}

func describeRoute(r *authz.Route) string {
	host, methods := r.Host, strings.Join(r.Methods, ",")
	if host == "" {
		host = "any"
	}
	if methods == "" {
		methods = "any"
	}
	return fmt.Sprintf("host %s, path prefix %s, methods %s", host, r.PathPrefix, methods)
}

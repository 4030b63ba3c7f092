package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/gateway"
	"github.com/certgate/certgate/internal/gatewayd"
)

func newGatewayCmd(s streams) *cobra.Command {
	var cfgPath, tok string
	var force bool
	cmd := &cobra.Command{
		Use:   "gateway --config FILE [--token T]",
		Short: "Run the mTLS gateway in front of HTTP and TCP upstreams",
		Long: `Run the mTLS gateway. Clients must present a certificate that chains to the
trust bundle, is valid, carries clientAuth and a SPIFFE ID of the trust
domain, and is not revoked; the first route matching a request decides
whether its identity may pass. SIGHUP or a change of the config file reloads
routes without dropping connections.

With an identity section in the config, the gateway holds its own
certificate: on first start it redeems an enrollment token for
spiffe://TD/gateway/<name> (--token, CERTGATE_TOKEN or identity.token_file)
with its host names, and from then on renews the certificate itself; new
connections get the renewed certificate, open ones carry on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(s.err, logOptions(nil)))
			if tok == "" {
				tok = os.Getenv("CERTGATE_TOKEN")
			}
			if cfgPath == "" {
				return errors.New("--config: no gateway config given")
			}
			gateway.SetGCDefault()
			sighup, stop := hangups()
			defer stop()
			return gatewayd.Run(cmd.Context(), gatewayd.Options{
				Config: cfgPath, Log: log, Out: s.out, Token: tok, ForceEnroll: force, Reload: sighup,
				Ready: func(gw *gateway.Gateway) { fmt.Fprintf(s.out, "certgate gateway listening on https://%s\n", gw.Addr()) },
			})
		},
	}
	cmd.AddCommand(newGatewayConfigCmd(s))
	cmd.Flags().StringVar(&cfgPath, "config", "", "gateway config file (YAML)")
	cmd.Flags().StringVar(&tok, "token", "", "enrollment token for the gateway's identity, used while identity.dir holds no valid certificate (default $CERTGATE_TOKEN)")
	cmd.Flags().BoolVar(&force, "force", false, "when enrolling with a token and identity.dir holds another identity's credentials, or files that are not a certgate identity, move them to identity.dir/backup-TIME first")
	return cmd
}

func newGatewayConfigCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "The gateway.yaml reference"}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print a complete gateway.yaml: every setting, what it does, its default",
		Long: `Print gateway.yaml with every setting in the order of the schema, a comment
saying what it does, and its default value (or an example value for the
identity, the server and the routes). It is generated from the schema the
gateway validates with, and loads as printed; docs/gateway.md carries the same
text.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := s.out.Write(config.GatewayExample())
			return err
		},
	})
	return cmd
}

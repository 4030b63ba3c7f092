package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newTokenCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Enrollment tokens"}
	var f adminFlags
	var id string
	var ttl time.Duration
	var role string
	create := &cobra.Command{
		Use:   "create --identity spiffe://TD/PATH [--ttl 15m] [--role ROLE]",
		Short: "Mint a one-time enrollment token; prints the token alone on stdout",
		Long: `Mint a one-time enrollment token for an identity.

A token for an identity that holds a role (admin, auditor, gateway, issuer;
see certgate role) makes whoever redeems it that privileged: it is minted
only with --role naming the roles it holds, lives at most
tokens.max_privileged_ttl (1h by default), and its audit record names the
roles and who minted it. An issuer mints tokens only for identities inside
its scope that hold no role.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return fmt.Errorf("--identity: required (e.g. spiffe://example.org/svc/billing)")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			t, err := cl.CreateRoleToken(cmd.Context(), id, role, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.err, "token %s for %s, single use, expires %s\n", t.ID, t.Identity, t.ExpiresAt.Format(time.RFC3339))
			fmt.Fprintln(s.out, t.Token)
			return nil
		},
	}
	f.add(create)
	create.Flags().StringVar(&id, "identity", "", "SPIFFE ID the token enrolls, e.g. spiffe://example.org/svc/billing")
	create.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default: tokens.default_ttl, 15m)")
	create.Flags().StringVar(&role, "role", "", "the roles the identity holds, comma-separated (required for a privileged token: e.g. gateway)")
	cmd.AddCommand(create)
	return cmd
}

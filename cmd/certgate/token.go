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
	create := &cobra.Command{
		Use:   "create --identity spiffe://TD/PATH [--ttl 15m]",
		Short: "Mint a one-time enrollment token; prints the token alone on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return fmt.Errorf("--identity: required (e.g. spiffe://example.org/svc/billing)")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			t, err := cl.CreateToken(cmd.Context(), id, ttl)
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
	cmd.AddCommand(create)
	return cmd
}

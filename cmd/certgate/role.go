package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/wire"
)

func newRoleCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Grant, revoke and list roles (admin, auditor, gateway, issuer)",
		Long: `Roles are data: an identity (or an identity pattern such as
spiffe://TD/ops/*) holds a role only because a grant says so; its name grants
nothing. Every grant and revocation is in the audit log.

  admin    every admin endpoint: tokens, revocation, certificates, audit, roles
  auditor  read only: certificates, the audit log, roles, the change feed
  gateway  follows the change feed; its certificates also serve TLS
  issuer   mints tokens for and revokes certificates of the identities
           inside its --scope only (delegated enrollment for a team)`,
	}
	change := func(use, short string, revoke bool) *cobra.Command {
		var f adminFlags
		var scope string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := f.client()
				if err != nil {
					return err
				}
				ch := wire.RoleChange{Role: args[0], Holder: args[1], Scope: scope}
				if revoke {
					if _, err := cl.RevokeRole(cmd.Context(), ch); err != nil {
						return err
					}
					fmt.Fprintf(s.out, "revoked role %s from %s%s\n", ch.Role, ch.Holder, scopeSuffix(scope))
					return nil
				}
				if _, err := cl.GrantRole(cmd.Context(), ch); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "granted role %s to %s%s\n", ch.Role, ch.Holder, scopeSuffix(scope))
				return nil
			},
		}
		f.add(c)
		c.Flags().StringVar(&scope, "scope", "", "issuer only: the identities it acts on, e.g. spiffe://TD/team/payments/*")
		return c
	}
	var lf adminFlags
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List every role grant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := lf.client()
			if err != nil {
				return err
			}
			grants, err := cl.Roles(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				if grants == nil {
					grants = []wire.RoleGrant{}
				}
				return enc.Encode(grants)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tHOLDER\tSCOPE\tGRANTED BY\tGRANTED AT")
			for _, g := range grants {
				sc := g.Scope
				if sc == "" {
					sc = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Role, g.Holder, sc, g.GrantedBy, g.GrantedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	lf.add(list)
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(
		change("grant ROLE IDENTITY|PATTERN [--scope PATTERN]", "Grant a role to an identity or an identity pattern", false),
		change("revoke ROLE IDENTITY|PATTERN [--scope PATTERN]", "Revoke a role grant (as granted: same holder and scope)", true),
		list,
	)
	return cmd
}

func scopeSuffix(scope string) string {
	if scope == "" {
		return ""
	}
	return " for " + scope
}

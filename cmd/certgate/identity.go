package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/apiclient"
)

func newIdentityCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Short: "The inventory of identities: certificates, last seen, stale and expiring"}
	cmd.AddCommand(newIdentityListCmd(s))
	return cmd
}

func newIdentityListCmd(s streams) *cobra.Command {
	var f adminFlags
	var asJSON bool
	var filter apiclient.IdentityFilter
	cmd := &cobra.Command{
		Use:   "list [--stale 30d] [--expiring 7d] [--json]",
		Short: "List identities with their certificates and when a gateway last saw them",
		Long: `List every identity that has a certificate, with how many are valid and
revoked, the latest one's expiry, and when a gateway last saw it (and from
which host).

--stale WINDOW keeps identities with a valid certificate and no request for
WINDOW (credentials nobody uses); --expiring WINDOW keeps those whose last
valid certificate lapses within WINDOW with no agent renewing it (past the
point an agent would have). Given both, an identity flagged either way is
listed. WINDOW is a number of days (30d) or a duration (12h).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			list, err := cl.ListIdentities(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(list.Identities)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IDENTITY\tVALID\tREVOKED\tNOT AFTER\tLAST SEEN\tREQUESTS\tFLAGS")
			for _, id := range list.Identities {
				var flags []string
				if id.Stale {
					flags = append(flags, "stale")
				}
				if id.Expiring {
					flags = append(flags, "expiring")
				}
				if !id.SharingSuspected.IsZero() {
					flags = append(flags, "sharing-suspected")
				}
				fl := strings.Join(flags, ",")
				if fl == "" {
					fl = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\n", id.Identity, id.Valid, id.Revoked, id.NotAfter.Format(time.RFC3339), lastSeen(id.LastSeen, id.LastSource), id.Requests, fl)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&filter.Identity, "identity", "", "only this identity")
	cmd.Flags().StringVar(&filter.Stale, "stale", "", "only identities with a valid certificate and no request for this long (30d, 12h)")
	cmd.Flags().StringVar(&filter.Expiring, "expiring", "", "only identities whose last certificate lapses within this long with no agent renewing it (7d)")
	return cmd
}

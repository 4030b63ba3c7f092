package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/wire"
)

func newCertCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "List, show, revoke and export certificates"}
	cmd.AddCommand(newCertListCmd(s), newCertShowCmd(s), newCertRevokeCmd(s), newCertExportCmd(s))
	return cmd
}

func newCertListCmd(s streams) *cobra.Command {
	var f adminFlags
	var asJSON bool
	var id, prefix, status string
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List issued certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			certs, err := cl.ListCertificates(cmd.Context(), apiclientFilter(id, prefix, status))
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				if certs == nil {
					certs = []wire.Certificate{}
				}
				return enc.Encode(certs)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tIDENTITY\tSTATUS\tNOT AFTER\tOBTAINED\tLAST SEEN")
			for _, c := range certs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Identity, c.Status, c.NotAfter.Format(time.RFC3339), c.Obtained, lastSeen(c.LastSeen, c.LastSource))
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&id, "identity", "", "only this identity")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only identities under this prefix")
	cmd.Flags().StringVar(&status, "status", "", "only valid, revoked or expired")
	return cmd
}

func newCertShowCmd(s streams) *cobra.Command {
	var f adminFlags
	cmd := &cobra.Command{
		Use:   "show SERIAL",
		Short: "Show one certificate and its PEM",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("cert show: give one serial (hex), e.g. certgate cert show 4f2a...; certgate cert list shows them, certgate cert list --identity ID finds one by identity (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			c, err := cl.ShowCertificate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "serial:       %s\nidentity:     %s\ncommon name:  %s\nstatus:       %s\n", c.Serial, c.Identity, c.CommonName, c.Status)
			fmt.Fprintf(s.out, "not before:   %s\nnot after:    %s\nkey type:     %s\nobtained:     %s\n", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.KeyType, c.Obtained)
			if c.RenewedFrom != "" {
				fmt.Fprintf(s.out, "renewed from: %s\n", c.RenewedFrom)
			}
			fmt.Fprintf(s.out, "sha-256:      %s\n", c.Fingerprint)
			if r := c.Revocation; r != nil {
				fmt.Fprintf(s.out, "revoked:      %s by %s (%s)\n", r.RevokedAt.Format(time.RFC3339), r.RevokedBy, r.ReasonName)
			}
			fmt.Fprint(s.out, c.PEM)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newCertRevokeCmd(s streams) *cobra.Command {
	var f adminFlags
	var serial, id, prefix, reason string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "revoke (--serial S | --identity ID | --prefix ID) [--reason keyCompromise] [--dry-run]",
		Short: "Revoke a certificate, every current certificate of an identity, or of every identity under a prefix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, v := range []string{serial, id, prefix} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("--serial, --identity, --prefix: give exactly one")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			revs, err := cl.Revoke(cmd.Context(), wire.RevokeRequest{Serial: serial, Identity: id, IdentityPrefix: prefix, Reason: reason, DryRun: dryRun})
			if err != nil {
				return err
			}
			verb := "revoked"
			if dryRun {
				verb = "would revoke"
			}
			if len(revs) == 0 {
				fmt.Fprintf(s.out, "nothing %s (already revoked, or no current certificate)\n", strings.TrimPrefix(verb, "would "))
			}
			for _, r := range revs {
				fmt.Fprintf(s.out, "%s %s (%s)\n", verb, r.Serial, r.ReasonName)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&serial, "serial", "", "serial number (hex)")
	cmd.Flags().StringVar(&id, "identity", "", "revoke every current certificate of this SPIFFE ID")
	cmd.Flags().StringVar(&prefix, "prefix", "", "revoke every current certificate of every identity under this SPIFFE ID (segment-wise)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be revoked; change nothing")
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise")
	return cmd
}

func apiclientFilter(id, prefix, status string) apiclient.ListFilter {
	return apiclient.ListFilter{Identity: id, Prefix: prefix, Status: strings.ToLower(status)}
}

// lastSeen is a LAST SEEN column: the time and host, or "never".
func lastSeen(t time.Time, source string) string {
	if t.IsZero() {
		return "never"
	}
	if source == "" {
		return t.UTC().Format(time.RFC3339)
	}
	return t.UTC().Format(time.RFC3339) + " from " + source
}

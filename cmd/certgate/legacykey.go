package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/legacykey"
	"github.com/certgate/certgate/internal/wire"
)

func newLegacyKeyCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "legacy-key",
		Short: "Static API keys as time-boxed identities, while their clients move to certificates",
		Long: `A legacy key is a static API key that a gateway accepts, on the routes that
opt in (legacy_keys in the gateway config), as the identity
spiffe://TD/legacy/NAME until its sunset. The server keeps only
SHA-256(salt || key); the keys of an import file are hashed here, on this
machine, and never sent. Every change is audited; gateways follow the keys
over the change feed, so a revoked key is refused everywhere within a second.

Move one client at a time: "migrate" mints an enrollment token for the
key's identity (route rules need no change); the client enrolls and runs
the agent; "list" and the console's "still on keys" page show it moving
from "key only" to "both" to "certificate only". See
docs/migrating-off-api-keys.md.`,
	}
	cmd.AddCommand(newLegacyImportCmd(s), newLegacyListCmd(s), newLegacyRevokeCmd(s), newLegacyExtendCmd(s), newLegacyMigrateCmd(s))
	return cmd
}

func newLegacyImportCmd(s streams) *cobra.Command {
	var f adminFlags
	var file, sunset string
	cmd := &cobra.Command{
		Use:   "import --file KEYS --sunset TIME",
		Short: "Import static API keys (lines \"NAME KEY\", or a JSON array of {\"name\",\"key\"})",
		Long: `Import static API keys, all or none. KEYS has one "NAME KEY" per line
(blank lines and # comments skipped), or is a JSON array of
{"name": NAME, "key": KEY}. NAME becomes the identity spiffe://TD/legacy/NAME
(lowercase letters, digits, '.', '-', '_'). A key must carry at least 128
bits of entropy (32 hex characters, 22 base64 characters); a short or
patterned key, a name or key given twice, or a bad name refuses the whole
file, naming each line. Only SHA-256(salt || key) leaves this machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--file is required")
			}
			until, err := parseTime("--sunset", sunset)
			if err != nil {
				return err
			}
			if until.IsZero() {
				return errors.New("--sunset is required: the time after which the keys stop working, e.g. 2027-03-01T00:00:00Z")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			entries, err := legacykey.ParseFile(data)
			if err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			salt, err := cl.LegacyKeySalt(cmd.Context())
			if err != nil {
				return err
			}
			in := wire.LegacyKeyImport{Sunset: until}
			for _, e := range entries {
				h := legacykey.Hash(salt, e.Key)
				in.Keys = append(in.Keys, wire.LegacyKeyHash{Name: e.Name, Hash: hex.EncodeToString(h[:]), Line: e.Line})
			}
			keys, err := cl.ImportLegacyKeys(cmd.Context(), in)
			if err != nil {
				return err
			}
			for _, k := range keys {
				fmt.Fprintf(s.out, "imported %s as %s until %s\n", k.Name, k.Identity, k.Sunset.Format(time.RFC3339))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&file, "file", "", "the keys to import")
	cmd.Flags().StringVar(&sunset, "sunset", "", "when the keys stop working (RFC 3339)")
	return cmd
}

func newLegacyListCmd(s streams) *cobra.Command {
	var f adminFlags
	var stale string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--stale 30d] [--json]",
		Short: "List legacy keys: their use, and each client's migration (key only, both, certificate only)",
		Long: `List every legacy key with its sunset, how many requests the gateways saw
with it, when and from where last, and its client's migration state:
"key only", "both" (a certificate of its identity in use, and the key
still used since), "certificate only" (the key revoked, or unused since the
certificate was first used), "unused". --stale WINDOW keeps the keys not
revoked and unused for WINDOW (never used: imported that long ago).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			keys, err := cl.LegacyKeys(cmd.Context(), stale)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(keys)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tIDENTITY\tSTATE\tSUNSET\tREQUESTS\tLAST SEEN\tROUTES\tREVOKED")
			for _, k := range keys {
				last := "never"
				if !k.LastSeen.IsZero() {
					last = k.LastSeen.UTC().Format(time.RFC3339)
					if len(k.Sources) > 0 {
						last += " from " + strings.Join(k.Sources, ",")
					}
				}
				routes, revoked := strings.Join(k.Routes, ","), "-"
				if routes == "" {
					routes = "-"
				}
				if !k.RevokedAt.IsZero() {
					revoked = k.RevokedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", k.Name, k.Identity, k.State, k.Sunset.UTC().Format(time.RFC3339), k.Requests, last, routes, revoked)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&stale, "stale", "", "only keys unused for this window (30d, 12h)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printLegacyKey(s streams, verb string, k wire.LegacyKey) {
	fmt.Fprintf(s.out, "%s %s (%s): sunset %s", verb, k.Name, k.Identity, k.Sunset.UTC().Format(time.RFC3339))
	if !k.RevokedAt.IsZero() {
		fmt.Fprintf(s.out, ", revoked %s", k.RevokedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(s.out)
}

func newLegacyRevokeCmd(s streams) *cobra.Command {
	var f adminFlags
	var name, reason string
	cmd := &cobra.Command{
		Use:   "revoke --name NAME [--reason TEXT]",
		Short: "Revoke a legacy key: every gateway refuses it within a second",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			k, err := cl.RevokeLegacyKey(cmd.Context(), name, wire.LegacyKeyRevoke{Reason: reason})
			if err != nil {
				return err
			}
			printLegacyKey(s, "revoked", k)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the key's name")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newLegacyExtendCmd(s streams) *cobra.Command {
	var f adminFlags
	var name, sunset string
	cmd := &cobra.Command{
		Use:   "extend --name NAME --sunset TIME",
		Short: "Move a legacy key's sunset",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			until, err := parseTime("--sunset", sunset)
			if err != nil {
				return err
			}
			if until.IsZero() {
				return errors.New("--sunset is required")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			k, err := cl.ExtendLegacyKey(cmd.Context(), name, wire.LegacyKeyExtend{Sunset: until})
			if err != nil {
				return err
			}
			printLegacyKey(s, "extended", k)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the key's name")
	cmd.Flags().StringVar(&sunset, "sunset", "", "the new sunset (RFC 3339)")
	return cmd
}

func newLegacyMigrateCmd(s streams) *cobra.Command {
	var f adminFlags
	var name string
	var ttl, grace time.Duration
	cmd := &cobra.Command{
		Use:   "migrate --name NAME [--ttl 24h] [--auto-revoke-after 24h]",
		Short: "Mint an enrollment token for a legacy key's identity, to move its client to a certificate",
		Long: `Mint an enrollment token for the identity the key maps to
(spiffe://TD/legacy/NAME), so the routes that allow the key allow the
certificate with no change. Hand it to the client: certgate enroll --token
TOKEN --out DIR, then certgate agent. With --auto-revoke-after GRACE the key
is revoked GRACE after a certificate of that identity is first used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			in := wire.LegacyKeyMigrate{}
			if ttl != 0 {
				in.TTL = ttl.String()
			}
			if grace != 0 {
				in.AutoRevokeAfter = grace.String()
			}
			res, err := cl.MigrateLegacyKey(cmd.Context(), name, in)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, res.Token.Token)
			fmt.Fprintf(s.err, "token for %s, expires %s; on the client: certgate enroll --token TOKEN --out DIR && certgate agent --dir DIR\n",
				res.Token.Identity, res.Token.ExpiresAt.UTC().Format(time.RFC3339))
			if res.Key.AutoRevokeAfter != "" {
				fmt.Fprintf(s.err, "the key %s is revoked %s after a certificate of %s is first used\n", name, res.Key.AutoRevokeAfter, res.Key.Identity)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the key's name")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the token's lifetime (default from the server config)")
	cmd.Flags().DurationVar(&grace, "auto-revoke-after", 0, "revoke the key this long after the identity's certificate is first used")
	return cmd
}

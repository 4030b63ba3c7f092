package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/auditcheck"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/checkpoint"
)

func newAuditCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var f adminFlags
	var sources []string
	var keyFile string
	verify := &cobra.Command{
		Use:   "verify [--checkpoint FILE|URL]...",
		Short: "Check the audit log against its signed checkpoints and the store; name the first bad record",
		Long: `Recomputes the audit hash chain from record 1 and checks it against signed
checkpoints: by default the server's newest (GET /v1/audit/checkpoint) and
the checkpoint file of --dir (audit.checkpoints), else those --checkpoint
names (a checkpoint file, a witness's file, or an https:// URL). Then asks
the server for certificates and revocations without an audit record.
Every checkpoint must verify with the audit key (--key, default
audit.public_key of --dir). Exits non-zero on the first problem, naming
the first bad record.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			_, roots, cfg, err := cadir.AdminCredentials(f.dir)
			if err != nil {
				return err
			}
			if keyFile == "" {
				keyFile = cfg.Path(cfg.Audit.PublicKey)
			}
			data, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			pub, err := checkpoint.ParsePublicKey(data)
			if err != nil {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			v, err := checkpoint.NewVerifier(cfg.CheckpointName(), pub)
			if err != nil {
				return err
			}
			locs := sources
			if len(locs) == 0 {
				locs = []string{cl.BaseURL() + "/v1/audit/checkpoint"}
				if _, err := os.Stat(cfg.Path(cfg.Audit.Checkpoints)); err == nil {
					locs = append(locs, cfg.Path(cfg.Audit.Checkpoints))
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			var cps []checkpoint.Signed
			for _, loc := range locs {
				got, err := auditcheck.LoadCheckpoints(cmd.Context(), loc, v, roots)
				if err != nil {
					fmt.Fprintf(s.out, "FAIL: %v\n", err)
					return err
				}
				cps = append(cps, got...)
			}
			rep, err := auditcheck.Verify(cmd.Context(), cl, cps)
			for _, u := range rep.Unrecorded {
				fmt.Fprintf(s.out, "FAIL: %s\n", auditcheck.Describe(u))
			}
			if err != nil {
				if !errors.Is(err, auditcheck.ErrUnrecorded) {
					fmt.Fprintf(s.out, "FAIL: %v\n", err)
				}
				return err
			}
			newest := "no checkpoint"
			if rep.Newest != nil {
				newest = fmt.Sprintf("newest checkpoint %d records signed %s", rep.Newest.Size, rep.Newest.Time.UTC().Format("2006-01-02T15:04:05Z"))
			}
			fmt.Fprintf(s.out, "OK: %d audit records, chain intact, head %s\nOK: %d checkpoints matched (%s); every certificate and revocation recorded\n",
				rep.Records, hex.EncodeToString(rep.Head), rep.Checkpoints, newest)
			return nil
		},
	}
	f.add(verify)
	verify.Flags().StringArrayVar(&sources, "checkpoint", nil, "signed checkpoints to check against: a file or an https:// URL (repeatable)")
	verify.Flags().StringVar(&keyFile, "key", "", "the audit key's public half, PEM (default audit.public_key of --dir)")
	cmd.AddCommand(verify)
	return cmd
}

package main

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/audit"
)

func newAuditCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var f adminFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit hash chain and name the first bad record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			// The chain is recomputed here, not trusted from the server.
			var v audit.Verifier
			const page = 5000
			for {
				recs, err := cl.AuditRecords(cmd.Context(), v.Count(), page)
				if err != nil {
					return err
				}
				for _, r := range recs {
					prev, err1 := hex.DecodeString(r.PrevHash)
					hash, err2 := hex.DecodeString(r.Hash)
					if err := errors.Join(err1, err2); err != nil {
						return fmt.Errorf("audit: record %d: bad hash encoding: %w", r.Seq, err)
					}
					rec := audit.Record{Seq: r.Seq, Entry: audit.Entry{Time: r.Time, Actor: r.Actor, Action: r.Action, Subject: r.Subject, Detail: r.Detail}, PrevHash: prev, Hash: hash}
					if err := v.Add(rec); err != nil {
						fmt.Fprintf(s.out, "FAIL: %v\n", err)
						return err
					}
				}
				if len(recs) < page {
					break
				}
			}
			fmt.Fprintf(s.out, "OK: %d audit records, chain intact, head %s\n", v.Count(), hex.EncodeToString(v.Head()))
			return nil
		},
	}
	f.add(verify)
	cmd.AddCommand(verify)
	return cmd
}

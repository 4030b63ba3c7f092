package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/accesslog"
	"github.com/certgate/certgate/internal/checkpoint"
)

func newAccessLogCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{Use: "accesslog", Short: "The gateway's access log"}
	var keyFile, name, file string
	verify := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check the access log's rotated segments against their signed checkpoints (access_log.tamper_evidence)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			pub, err := checkpoint.ParsePublicKey(data)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			v, err := checkpoint.NewVerifier(name, pub)
			if err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			path, r, err := accesslog.VerifyDir(args[0], file, v)
			if err != nil {
				fmt.Fprintf(s.out, "FAIL: %s\n", path)
				return err
			}
			fmt.Fprintf(s.out, "OK: %s: %d rotated segments, lines %d to %d, every line and segment as signed\n", path, r.Segments, r.FirstLine, r.Lines)
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "the checkpoint signing key's public half (PEM PUBLIC KEY)")
	verify.Flags().StringVar(&name, "name", "certgate-access-log", "the checkpoints' key name (access_log.tamper_evidence.name)")
	verify.Flags().StringVar(&file, "file", "", "the access log's file name in DIR, when DIR holds several")
	verify.MarkFlagRequired("key")
	cmd.AddCommand(verify)
	return cmd
}

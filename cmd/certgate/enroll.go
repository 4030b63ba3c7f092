package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/keytype"
)

func newEnrollCmd(s streams) *cobra.Command {
	var tok, out, kt string
	cmd := &cobra.Command{
		Use:   "enroll --token T --out DIR",
		Short: "Make a key here, redeem a token, and write key.pem, cert.pem and bundle.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tok == "" {
				tok = os.Getenv("CERTGATE_TOKEN")
			}
			if tok == "" {
				return fmt.Errorf("--token: required (or CERTGATE_TOKEN)")
			}
			if out == "" {
				return fmt.Errorf("--out: required")
			}
			t, err := keytype.Parse(kt)
			if err != nil {
				return fmt.Errorf("--key-type: %w", err)
			}
			res, err := enroll.Enroll(cmd.Context(), enroll.Options{Token: tok, OutDir: out, KeyType: t})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "enrolled %s (serial %s, valid until %s)\n  %s/key.pem  %s/cert.pem  %s/bundle.pem\n",
				res.Identity, res.Serial, res.NotAfter.Format(time.RFC3339), out, out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&tok, "token", "", "enrollment token (default $CERTGATE_TOKEN)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write key.pem, cert.pem and bundle.pem into")
	cmd.Flags().StringVar(&kt, "key-type", string(keytype.Default), "key type: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096")
	return cmd
}

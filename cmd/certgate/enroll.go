package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/credexport"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/keytype"
)

func newEnrollCmd(s streams) *cobra.Command {
	var tok, out, kt, keyStore, p11 string
	var force bool
	var ff formatFlags
	cmd := &cobra.Command{
		Use:   "enroll --token T --out DIR",
		Short: "Make a key here, redeem a token, and write key.pem, cert.pem and bundle.pem (and credentials.p12 with --format p12)",
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
			if p11 == "" {
				p11 = os.Getenv("CERTGATE_PKCS11_URI")
			}
			var store string
			switch keyStore {
			case "file":
				if p11 != "" && cmd.Flags().Changed("pkcs11-uri") {
					return errors.New("--pkcs11-uri goes with --key-store pkcs11")
				}
			case "pkcs11":
				if p11 == "" {
					return errors.New("--key-store pkcs11: give the token with --pkcs11-uri (or CERTGATE_PKCS11_URI), e.g. pkcs11:token=certgate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin")
				}
				store = p11
			default:
				return fmt.Errorf("--key-store: %q is not file or pkcs11", keyStore)
			}
			if store != "" && ff.wantsP12() {
				return errors.New("--format p12 and --key-store pkcs11: a key in a token cannot be written into a file")
			}
			// The password is asked before the token is spent.
			fo, err := ff.options()
			if err != nil {
				return err
			}
			res, err := enroll.Enroll(cmd.Context(), enroll.Options{Token: tok, OutDir: out, KeyType: t, KeyStore: store, Force: force})
			if err != nil {
				return err
			}
			keyFile := "key.pem"
			if store != "" {
				keyFile = "key.uri (the key stays in the token)"
			}
			fmt.Fprintf(s.out, "enrolled %s (serial %s, valid until %s)\n  %s/%s  %s/cert.pem  %s/bundle.pem\n",
				res.Identity, res.Serial, res.NotAfter.Format(time.RFC3339), out, keyFile, out, out)
			if res.Backup != "" {
				fmt.Fprintf(s.out, "moved what %s held before (%s) to %s\n", out, res.Replaced, res.Backup)
			}
			if fo.Format != credexport.P12 {
				return nil
			}
			// The PEM files stay: the agent renews from them. The p12 is
			// the one file a Java or .NET stack loads.
			c, err := certgatetls.ReadCredentials(out)
			if err != nil {
				return err
			}
			p12 := filepath.Join(out, p12File)
			if err := credexport.WriteFile(p12, *c.Certificate, fo); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "  %s\n", p12)
			return nil
		},
	}
	cmd.Flags().StringVar(&tok, "token", "", "enrollment token (default $CERTGATE_TOKEN)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write key.pem, cert.pem and bundle.pem into")
	cmd.Flags().StringVar(&kt, "key-type", string(keytype.Default), "key type: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096")
	cmd.Flags().BoolVar(&force, "force", false, "when --out holds another identity's credentials, or files that are not a certgate identity, move them to --out/backup-TIME first (without it enroll refuses, before the token is spent)")
	cmd.Flags().StringVar(&keyStore, "key-store", "file", "where the key is made and kept: file (key.pem) or pkcs11 (inside the token --pkcs11-uri names; the directory records its URI in key.uri)")
	cmd.Flags().StringVar(&p11, "pkcs11-uri", "", "RFC 7512 URI of the PKCS#11 token for --key-store pkcs11: module-path, token (or serial, slot-id) and pin-source (default $CERTGATE_PKCS11_URI)")
	ff.add(cmd, "")
	return cmd
}

// p12File is the PKCS#12 file enroll --format p12 writes next to the PEM
// files.
const p12File = "credentials.p12"

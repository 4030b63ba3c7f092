package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/credexport"
	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/keytype"
)

func newEnrollCmd(s streams) *cobra.Command {
	var tok, out, kt, keyStore, p11, tpmAt string
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
			if keyStore != "pkcs11" && p11 != "" && cmd.Flags().Changed("pkcs11-uri") {
				return errors.New("--pkcs11-uri goes with --key-store pkcs11")
			}
			if keyStore != "tpm" && cmd.Flags().Changed("tpm") {
				return errors.New("--tpm goes with --key-store tpm")
			}
			var store, where string
			switch keyStore {
			case "file":
			case "tpm":
				if store, err = tpmStore(tpmAt); err != nil {
					return err
				}
				where = "TPM"
			case "pkcs11":
				where = "token"
				if p11 == "" {
					return errors.New("--key-store pkcs11: give the token with --pkcs11-uri (or CERTGATE_PKCS11_URI), e.g. pkcs11:token=certgate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin")
				}
				store = p11
			default:
				return fmt.Errorf("--key-store: %q is not file, pkcs11 or tpm", keyStore)
			}
			if store != "" && ff.wantsP12() {
				return fmt.Errorf("--format p12 and --key-store %s: a key in a %s cannot be written into a file", keyStore, where)
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
				keyFile = "key.uri (the key stays in the " + where + ")"
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
	cmd.Flags().StringVar(&keyStore, "key-store", "file", "where the key is made and kept: file (key.pem), pkcs11 (inside the token --pkcs11-uri names) or tpm (inside the TPM --tpm names); for pkcs11 and tpm the directory records where the key is in key.uri")
	cmd.Flags().StringVar(&p11, "pkcs11-uri", "", "RFC 7512 URI of the PKCS#11 token for --key-store pkcs11: module-path, token (or serial, slot-id) and pin-source (default $CERTGATE_PKCS11_URI)")
	cmd.Flags().StringVar(&tpmAt, "tpm", "", "the TPM 2.0 for --key-store tpm: a device (/dev/tpmrm0, the default) or a simulator's HOST:PORT (TCG simulator protocol, e.g. swtpm socket --server type=tcp; the platform port is PORT+1) (default $CERTGATE_TPM)")
	ff.add(cmd, "")
	return cmd
}

// tpmStore is the TPM URI of --tpm: a device path, a simulator's
// HOST:PORT, or a tpm: URI as it is.
func tpmStore(at string) (string, error) {
	if at == "" {
		at = os.Getenv("CERTGATE_TPM")
	}
	switch {
	case at == "":
		return devicekey.TPMScheme + "device=/dev/tpmrm0", nil
	case strings.HasPrefix(at, devicekey.TPMScheme):
		return at, nil
	case strings.HasPrefix(at, "/"):
		return devicekey.TPMScheme + "device=" + at, nil
	}
	if _, _, err := net.SplitHostPort(at); err != nil {
		return "", fmt.Errorf("--tpm: %q is neither a device path nor a simulator's HOST:PORT", at)
	}
	return devicekey.TPMScheme + "simulator=" + at, nil
}

// p12File is the PKCS#12 file enroll --format p12 writes next to the PEM
// files.
const p12File = "credentials.p12"

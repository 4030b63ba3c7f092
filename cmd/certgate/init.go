package main

import (
	"fmt"
	"net/url"
	"slices"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/cakey"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/keytype"
)

func newInitCmd(s streams) *cobra.Command {
	var dir, td, kt, passFile, admin, storeURL, listen, serverURL, statusListen, caKey string
	cmd := &cobra.Command{
		Use:   "init --dir DIR --trust-domain TD",
		Short: "Create a CA (root + online intermediate), a config, an admin certificate and the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(dir); err != nil {
				return err
			}
			if td == "" {
				return fmt.Errorf("--trust-domain: required (e.g. example.org)")
			}
			t, err := keytype.Parse(kt)
			if err != nil {
				return fmt.Errorf("--key-type: %w", err)
			}
			if caKey != "" {
				if _, err := cakey.ParseURI(caKey); err != nil {
					return fmt.Errorf("--ca-key: %w", err)
				}
			}
			pass, err := readPassphrase(passFile)
			if err != nil {
				return err
			}
			cfg := config.DefaultServer(td)
			if listen != "" {
				cfg.Listen.Listen = listen
				cfg.Listen.URL = "https://" + listen
			}
			if serverURL != "" {
				cfg.Listen.URL = serverURL
			}
			if statusListen != "" {
				cfg.Listen.StatusListen = statusListen
				cfg.Listen.StatusURL = "http://" + statusListen
			}
			if u, err := url.Parse(cfg.Listen.URL); err == nil && u.Hostname() != "" && !slices.Contains(cfg.Listen.Hostnames, u.Hostname()) {
				// The server's certificate must name the host clients dial.
				cfg.Listen.Hostnames = append(cfg.Listen.Hostnames, u.Hostname())
			}
			if err := cadir.Init(cmd.Context(), cadir.InitOptions{
				Dir: dir, TrustDomain: td, KeyType: t, Passphrase: pass, AdminName: admin, Store: storeURL, Config: &cfg, Clock: clock.Real{},
				CAKey: caKey,
			}); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "created certgate CA for spiffe://%s in %s\n", td, dir)
			fmt.Fprintf(s.out, "  config:  %s/certgate.yaml\n  bundle:  %s/bundle.pem\n  admin:   spiffe://%s/admin/%s (%s/admin/)\n", dir, dir, td, admin, dir)
			fmt.Fprintf(s.out, "next: certgate server --dir %s\n", dir)
			return nil
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&td, "trust-domain", "", "SPIFFE trust domain, e.g. example.org")
	cmd.Flags().StringVar(&kt, "key-type", string(keytype.Default), "CA key type: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase that encrypts the CA keys (default $CERTGATE_PASSPHRASE)")
	cmd.Flags().StringVar(&admin, "admin-name", "admin", "name of the admin identity spiffe://TD/admin/NAME")
	cmd.Flags().StringVar(&storeURL, "store", "", "store URL (default: SQLite certgate.db in DIR)")
	cmd.Flags().StringVar(&listen, "listen", "", "address the server will listen on (default 127.0.0.1:8444; the gateway defaults to 8443)")
	cmd.Flags().StringVar(&serverURL, "server-url", "", "URL clients use to reach the server, written into tokens (default https://LISTEN)")
	cmd.Flags().StringVar(&caKey, "ca-key", "", "make the CA keys inside a PKCS#11 token: an RFC 7512 URI with module-path and pin-source, e.g. 'pkcs11:token=certgate?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/certgate/pin' (default: encrypted key files in DIR/ca)")
	cmd.Flags().StringVar(&statusListen, "status-listen", "", "also serve the CRL and OCSP over plain HTTP on this address; certificates name http://STATUS-LISTEN/crl and /ocsp (default: off)")
	return cmd
}

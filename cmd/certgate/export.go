package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/credexport"
	"github.com/certgate/certgate/internal/secretin"
)

// p12PasswordEnv is where a PKCS#12 password may come from besides a file
// or the terminal.
const p12PasswordEnv = "CERTGATE_P12_PASSWORD"

// formatFlags are --format, its --p12 shorthand, --legacy and
// --password-file, shared by `cert export` and `enroll`.
type formatFlags struct {
	format, passFile string
	p12, legacy      bool
}

func (f *formatFlags) add(cmd *cobra.Command, def string) {
	cmd.Flags().StringVar(&f.format, "format", def, "pem or p12 (PKCS#12) (default pem)")
	cmd.Flags().BoolVar(&f.p12, "p12", false, "same as --format p12")
	cmd.Flags().BoolVar(&f.legacy, "legacy", false, "p12 only: PBE-SHA1-3DES with a SHA-1 MAC for old stores (Windows before Server 2019, Java before 12); default PBES2 AES-256 with an HMAC-SHA-256 MAC")
	cmd.Flags().StringVar(&f.passFile, "password-file", "", "p12 only: file holding the password (default $"+p12PasswordEnv+", else asked at the terminal)")
}

// wantsP12 reports whether the flags ask for PKCS#12, without asking for
// a password.
func (f *formatFlags) wantsP12() bool {
	format, err := credexport.ParseFormat(f.format)
	return f.p12 || (err == nil && format == credexport.P12)
}

// options resolves the flags; it asks for the password only for p12.
func (f *formatFlags) options() (credexport.Options, error) {
	format := credexport.PEM
	if f.format != "" {
		var err error
		if format, err = credexport.ParseFormat(f.format); err != nil {
			return credexport.Options{}, fmt.Errorf("--format: %w", err)
		}
	}
	if f.p12 {
		if format != credexport.P12 && f.format != "" {
			return credexport.Options{}, fmt.Errorf("--p12 and --format %s disagree: give one", f.format)
		}
		format = credexport.P12
	}
	o := credexport.Options{Format: format, Legacy: f.legacy}
	if format != credexport.P12 {
		if f.legacy || f.passFile != "" {
			return o, errors.New("--legacy and --password-file are for --format p12")
		}
		return o, nil
	}
	var err error
	o.Password, err = secretin.Read(secretin.Source{What: "PKCS#12 password", FileFlag: "--password-file", File: f.passFile, Env: p12PasswordEnv, Confirm: true})
	return o, err
}

func newCertExportCmd(s streams) *cobra.Command {
	var dir, creds, out string
	var ff formatFlags
	cmd := &cobra.Command{
		Use:   "export (--creds DIR | --dir CERTGATE_DIR) --out FILE [--format pem|p12 | --p12] [--legacy] [--password-file F]",
		Short: "Write a client's key and certificate chain as one PEM or PKCS#12 file (the admin's by default)",
		Long: `Writes the private key and certificate chain of a credentials directory
(--creds, written by certgate enroll or the agent) or, by default, of the
admin of the certgate directory (--dir), as one file, mode 0600: PEM (the
key, then the chain) or PKCS#12 for a browser, Java, .NET or curl
--cert-type P12. The PKCS#12 password comes from --password-file, else
$` + p12PasswordEnv + `, else the terminal. A key held in a PKCS#11 token or a
TPM cannot be exported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out: required")
			}
			cert, err := exportSource(dir, creds)
			if err != nil {
				return err
			}
			o, err := ff.options()
			if err != nil {
				return err
			}
			if err := credexport.WriteFile(out, cert, o); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "wrote %s (%s)\n", out, o.Format)
			return nil
		},
	}
	dirFlag(cmd, &dir)
	cmd.Flags().StringVar(&creds, "creds", "", "credentials directory (key.pem, cert.pem) to export instead of the admin's")
	cmd.Flags().StringVar(&out, "out", "", "file to write (replaced atomically, mode 0600)")
	ff.add(cmd, "")
	return cmd
}

// exportSource reads the credentials to export: the directory's with
// --creds, else the admin's of the certgate directory.
func exportSource(dir, creds string) (tls.Certificate, error) {
	if creds != "" {
		c, err := certgatetls.ReadCredentials(creds)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--creds: %w", err)
		}
		return *c.Certificate, nil
	}
	if dir == "" {
		return tls.Certificate{}, errors.New("--creds or --dir: say whose credentials to export (--dir defaults to $CERTGATE_DIR, for the admin's)")
	}
	cert, _, _, err := cadir.AdminCredentials(dir)
	return cert, err
}

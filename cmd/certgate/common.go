package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/config"
)

// dirFlag adds --dir, defaulting to $CERTGATE_DIR.
func dirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "dir", os.Getenv("CERTGATE_DIR"), "certgate directory (default $CERTGATE_DIR)")
}

func needDir(dir string) error {
	if dir == "" {
		return errors.New("--dir: no certgate directory given (flag --dir or CERTGATE_DIR)")
	}
	return nil
}

// readPassphrase returns the CA passphrase from --passphrase-file if given,
// else from CERTGATE_PASSPHRASE. A trailing newline in the file is dropped.
// The passphrase is never printed or logged.
func readPassphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--passphrase-file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("--passphrase-file: %s is empty; an empty passphrase is refused", file)
		}
		return b, nil
	}
	if p := os.Getenv("CERTGATE_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	return nil, errors.New("no passphrase: set CERTGATE_PASSPHRASE or use --passphrase-file (an empty passphrase is refused)")
}

// adminClient builds an API client authenticated with DIR's admin
// certificate, talking to serverURL (which came from source) or, if
// empty, the config's server.url.
func adminClient(dir, serverURL, source string) (*apiclient.Client, error) {
	if err := needDir(dir); err != nil {
		return nil, err
	}
	cert, roots, cfg, err := cadir.AdminCredentials(dir)
	if err != nil {
		return nil, err
	}
	if serverURL == "" {
		serverURL, source = cfg.Listen.URL, "server.url in "+cfg.Path(config.FileName)
	}
	return apiclient.New(apiclient.Options{ServerURL: serverURL, Roots: roots, Certificate: &cert, Timeout: 60 * time.Second, URLSource: source})
}

// adminFlags adds --dir and --server to an admin command.
type adminFlags struct {
	dir, server string
}

func (f *adminFlags) add(cmd *cobra.Command) {
	dirFlag(cmd, &f.dir)
	cmd.Flags().StringVar(&f.server, "server", "", "server URL (default $CERTGATE_SERVER, else server.url from the config)")
}

// client resolves the server URL: --server, else $CERTGATE_SERVER, else
// the config's server.url; an error reaching it names which.
func (f *adminFlags) client() (*apiclient.Client, error) {
	if f.server != "" {
		return adminClient(f.dir, f.server, "--server")
	}
	if env := os.Getenv("CERTGATE_SERVER"); env != "" {
		return adminClient(f.dir, env, "$CERTGATE_SERVER")
	}
	return adminClient(f.dir, "", "")
}

package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/loadgen"
)

// loadTarget is what "bench enroll", "bench renew" and "bench storm" need
// before they prepare their work: the server, its CA directory's
// configuration and roots, an admin client, the key type and, with
// --server-pid, a reader of the server's CPU time.
type loadTarget struct {
	server    string
	cfg       *config.Server
	roots     *x509.CertPool
	admin     *apiclient.Client // the caller closes its idle connections
	keyType   keytype.Type
	serverCPU func() (time.Duration, error) // nil without --server-pid
}

// openLoadTarget checks --server-pid and --key-type, reads the admin
// credentials of dir and makes an admin client for server (the config's
// server URL if empty).
func openLoadTarget(dir, server, keyType string, serverPID int) (*loadTarget, error) {
	t := &loadTarget{server: server}
	if serverPID != 0 {
		if _, err := loadgen.ProcessCPU(serverPID); err != nil {
			return nil, fmt.Errorf("--server-pid: %w", err)
		}
		t.serverCPU = func() (time.Duration, error) { return loadgen.ProcessCPU(serverPID) }
	}
	kt, err := keytype.Parse(keyType)
	if err != nil {
		return nil, fmt.Errorf("--key-type: %w", err)
	}
	t.keyType = kt
	cert, roots, cfg, err := cadir.AdminCredentials(dir)
	if err != nil {
		return nil, err
	}
	t.cfg, t.roots = cfg, roots
	if t.server == "" {
		t.server = cfg.Listen.URL
	}
	t.admin, err = apiclient.New(apiclient.Options{ServerURL: t.server, Roots: roots, Certificate: &cert, Timeout: 60 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return t, nil
}

// printRun prints res, if the run returned one, then returns the run's
// error.
func printRun[R interface {
	comparable
	Print(io.Writer) error
}](out io.Writer, res R, err error) error {
	var none R
	if res != none {
		if perr := res.Print(out); perr != nil {
			return perr
		}
	}
	return err
}

package agent

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
)

// Files the agent writes next to the credentials (certgatetls.KeyFile,
// CertFile, BundleFile and ServerURLFile; the format is certgatetls's).
const (
	// CombinedFile holds the chain followed by the key (0600), replaced in
	// one rename, for readers that must never see a mismatched pair.
	CombinedFile = "combined.pem"
	// StatusFile is the agent's last state, rewritten after every attempt.
	StatusFile = "agent-status.json"
)

// credentials are a directory's credentials as certgatetls reads and
// writes them, with the identity parsed. They are never modified after
// construction, so they can be shared through an atomic pointer.
type credentials struct {
	*certgatetls.Credentials
	id identity.ID
}

func (c *credentials) leaf() *x509.Certificate { return c.Chain[0] }

// withIdentity adds the parsed identity to c (which certgatetls checked).
func withIdentity(c *certgatetls.Credentials) (*credentials, error) {
	id, err := identity.Parse(c.Identity)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &credentials{Credentials: c, id: id}, nil
}

// loadCredentials reads key.pem, cert.pem and bundle.pem from dir.
func loadCredentials(dir string) (*credentials, error) {
	c, err := certgatetls.ReadCredentials(dir)
	var missing *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.As(err, &missing):
		return nil, fmt.Errorf("agent: %s does not exist: enroll first (certgate enroll --token ... --out %s)", missing.Path, dir)
	case err != nil:
		return nil, fmt.Errorf("agent: %w", err)
	}
	return withIdentity(c)
}

// write replaces the files in dir: key.pem, cert.pem, bundle.pem (in that
// order, see the package documentation), then combined.pem. A directory
// that no longer holds c's identity is not written (see [checkDir]).
func (c *credentials) write(dir string) error {
	if err := checkDir(dir, c.Identity); err != nil {
		return err
	}
	if err := credsdir.Write(dir, c.Credentials); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return c.writeCombined(dir)
}

// checkDir makes sure dir still holds the credentials of id, the
// identity the agent renews: whoever put another identity's files there
// (an enroll --force) meant them to stay. Renewal fails and is retried;
// a SIGHUP makes what is there current.
func checkDir(dir, id string) error {
	_, err := credsdir.Check(dir, id)
	var refused *credsdir.RefusedError
	if errors.As(err, &refused) {
		return fmt.Errorf("agent: %s now holds %s; not renewing %s into it (send SIGHUP to use what is there, or put this identity's files back)",
			dir, refused.Found.What(), id)
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func (c *credentials) writeCombined(dir string) error {
	if c.KeyURI() != "" {
		// The key is in a device: there is nothing to combine, and a
		// combined.pem left from before would hold a key no longer used.
		if err := os.Remove(filepath.Join(dir, CombinedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("agent: %w", err)
		}
		return nil
	}
	keyPEM, err := pemutil.EncodePrivateKey(c.Key())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	data := append(pemutil.EncodeCertificates(c.Chain...), keyPEM...)
	if err := atomicfile.Write(filepath.Join(dir, CombinedFile), data, 0o600); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// combinedCurrent reports whether combined.pem already holds c.
func (c *credentials) combinedCurrent(dir string) bool {
	if c.KeyURI() != "" {
		_, err := os.Stat(filepath.Join(dir, CombinedFile))
		return errors.Is(err, fs.ErrNotExist)
	}
	b, err := os.ReadFile(filepath.Join(dir, CombinedFile))
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates(b)
	return err == nil && len(certs) > 0 && bytes.Equal(certs[0].Raw, c.leaf().Raw)
}

// ServerURL returns the server URL for the agent of dir: flag if given,
// else what dir/server.url holds. Once the agent is set up, pass the result
// to [RememberServerURL] so the next start needs no flag.
func ServerURL(dir, flag string) (string, error) {
	path := filepath.Join(dir, certgatetls.ServerURLFile)
	if flag != "" {
		return flag, checkServerURL(flag)
	}
	u, err := certgatetls.ReadServerURL(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("agent: no server URL: enroll with certgate enroll (which writes %s) or pass --server https://HOST:PORT once", path)
	}
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	if err := checkServerURL(u); err != nil {
		return "", fmt.Errorf("%w (in %s)", err, path)
	}
	return u, nil
}

// RememberServerURL writes u to dir/server.url unless it already holds it.
func RememberServerURL(dir, u string) error {
	if old, err := certgatetls.ReadServerURL(dir); err == nil && old == u {
		return nil
	}
	if err := certgatetls.WriteServerURL(dir, u); err != nil {
		return fmt.Errorf("agent: remember the server URL: %w", err)
	}
	return nil
}

func checkServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("agent: server URL %q must be https://HOST[:PORT]", s)
	}
	return nil
}

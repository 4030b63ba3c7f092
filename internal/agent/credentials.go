package agent

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
)

// Files the agent writes next to enroll's key.pem, cert.pem and bundle.pem.
const (
	// CombinedFile holds the chain followed by the key (0600), replaced in
	// one rename, for readers that must never see a mismatched pair.
	CombinedFile = "combined.pem"
	// StatusFile is the agent's last state, rewritten after every attempt.
	StatusFile = "agent-status.json"
	// ServerURLFile remembers the server URL: certgate enroll writes it from
	// the token, --server overrides it.
	ServerURLFile = enroll.ServerURLFile
)

// credentials are a key, its certificate chain and the trust bundle, as
// loaded from or written to a directory. They are never modified after
// construction, so they can be shared through an atomic pointer.
type credentials struct {
	cert   *tls.Certificate // chain with Leaf set, for TLS
	key    crypto.Signer
	chain  []*x509.Certificate // leaf first
	bundle []*x509.Certificate
	roots  *x509.CertPool
	id     identity.ID
	serial string
}

func (c *credentials) leaf() *x509.Certificate { return c.chain[0] }

func newCredentials(key crypto.Signer, chain, bundle []*x509.Certificate) (*credentials, error) {
	if len(chain) == 0 {
		return nil, errors.New("agent: no certificate")
	}
	if len(bundle) == 0 {
		return nil, errors.New("agent: empty trust bundle")
	}
	leaf := chain[0]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("agent: the key does not match the certificate")
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("agent: certificate: %w", err)
	}
	c := &credentials{key: key, chain: chain, bundle: bundle, roots: x509.NewCertPool(), id: id, serial: leaf.SerialNumber.Text(16)}
	c.cert = &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, x := range chain {
		c.cert.Certificate = append(c.cert.Certificate, x.Raw)
	}
	for _, r := range bundle {
		c.roots.AddCert(r)
	}
	return c, nil
}

// loadCredentials reads key.pem, cert.pem and bundle.pem from dir.
func loadCredentials(dir string) (*credentials, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("agent: %s does not exist: enroll first (certgate enroll --token ... --out %s)", filepath.Join(dir, name), dir)
		}
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		return b, nil
	}
	keyPEM, err := read(enroll.KeyFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(enroll.CertFile)
	if err != nil {
		return nil, err
	}
	bundlePEM, err := read(enroll.BundleFile)
	if err != nil {
		return nil, err
	}
	key, err := pemutil.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", filepath.Join(dir, enroll.KeyFile), err)
	}
	chain, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", filepath.Join(dir, enroll.CertFile), err)
	}
	bundle, err := pemutil.ParseCertificates(bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", filepath.Join(dir, enroll.BundleFile), err)
	}
	c, err := newCredentials(key, chain, bundle)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	return c, nil
}

// write replaces the files in dir: key.pem, cert.pem, bundle.pem (in that
// order, see the package documentation), then combined.pem.
func (c *credentials) write(dir string) error {
	if err := enroll.Write(dir, c.key, c.chain, c.bundle); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return c.writeCombined(dir)
}

func (c *credentials) writeCombined(dir string) error {
	keyPEM, err := pemutil.EncodePrivateKey(c.key)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	data := append(pemutil.EncodeCertificates(c.chain...), keyPEM...)
	if err := atomicfile.Write(filepath.Join(dir, CombinedFile), data, 0o600); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// combinedCurrent reports whether combined.pem already holds c.
func (c *credentials) combinedCurrent(dir string) bool {
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
	path := filepath.Join(dir, ServerURLFile)
	if flag != "" {
		return flag, checkServerURL(flag)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("agent: no server URL: enroll with certgate enroll (which writes %s) or pass --server https://HOST:PORT once", path)
	}
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	u := strings.TrimSpace(string(b))
	if err := checkServerURL(u); err != nil {
		return "", fmt.Errorf("%w (in %s)", err, path)
	}
	return u, nil
}

// RememberServerURL writes u to dir/server.url unless it already holds it.
func RememberServerURL(dir, u string) error {
	path := filepath.Join(dir, ServerURLFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == u {
		return nil
	}
	if err := atomicfile.Write(path, []byte(u+"\n"), 0o644); err != nil {
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

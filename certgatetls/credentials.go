package certgatetls

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
)

// The files of a credentials directory. This package owns the format (see
// the package documentation): [ReadCredentials] and [WriteCredentials] are
// the one reader and the one writer of the key, certificate and bundle, and
// `certgate enroll`, `certgate agent` and the gateway's own identity use
// them.
const (
	// KeyFile is the private key, PKCS#8 PEM, mode 0600.
	KeyFile = "key.pem"
	// CertFile is the certificate chain, PEM: the leaf, then the
	// intermediates.
	CertFile = "cert.pem"
	// BundleFile is the trusted roots, PEM.
	BundleFile = "bundle.pem"
	// KeyURIFile replaces KeyFile when the key lives in a device: a
	// PKCS#11 token's key (an RFC 7512 pkcs11: URI) or a TPM's (a tpm: URI
	// holding the key's TPM-wrapped blobs, usable only in that TPM), mode
	// 0600. The key itself never leaves the device.
	KeyURIFile = "key.uri"
	// ServerURLFile is the certgate server's URL (https://HOST:PORT and a
	// newline): enrollment writes the one the token names, so that the agent
	// knows where to renew.
	ServerURLFile = "server.url"
)

// ErrKeyMismatch means key.pem does not hold the key of the certificate in
// cert.pem. While an agent replaces the files this is transient.
var ErrKeyMismatch = errors.New("certgatetls: private key does not match the certificate")

// Credentials is one consistent set of the files: a key, its certificate
// chain and the trust bundle. It is never modified.
type Credentials struct {
	// Certificate is the chain, leaf first, with its private key and Leaf
	// set.
	Certificate *tls.Certificate
	// Chain is the chain parsed, leaf first.
	Chain []*x509.Certificate
	// Identity is the SPIFFE ID in the leaf, e.g.
	// "spiffe://example.org/svc/billing".
	Identity string
	// Serial is the leaf's serial number in lowercase hexadecimal.
	Serial string
	// NotAfter is when the leaf expires.
	NotAfter time.Time
	// Bundle holds the trusted roots of bundle.pem; Roots is the same as a
	// pool.
	Bundle []*x509.Certificate
	Roots  *x509.CertPool
	// Generation counts a Source's loads: 1 for the first, +1 for each
	// change; 0 outside a Source.
	Generation uint64

	key    crypto.Signer
	keyURI string            // where the key is, when it is in a device
	hash   [sha256.Size]byte // of the files it was read from, in a Source
	id     identity.ID
}

// NewCredentials checks that key belongs to the leaf, chain[0], which must
// carry one SPIFFE ID, and returns them as Credentials. bundle holds the
// trusted roots. It checks neither validity nor the chain: an expired
// certificate is still the one to renew or to report.
func NewCredentials(key crypto.Signer, chain, bundle []*x509.Certificate) (*Credentials, error) {
	if len(chain) == 0 {
		return nil, errors.New("certgatetls: no certificate")
	}
	if len(bundle) == 0 {
		return nil, errors.New("certgatetls: empty trust bundle")
	}
	c, err := assemble(key, chain, bundle)
	if err != nil {
		if !errors.Is(err, ErrKeyMismatch) {
			err = fmt.Errorf("certgatetls: certificate: %w", err)
		}
		return nil, err
	}
	return c, nil
}

// assemble builds Credentials from parts that are not empty. Its errors are
// ErrKeyMismatch, or the leaf's identity error unwrapped, for the caller to
// name the files.
func assemble(key crypto.Signer, chain, bundle []*x509.Certificate) (*Credentials, error) {
	leaf := chain[0]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, ErrKeyMismatch
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, err
	}
	c := &Credentials{
		Certificate: &tls.Certificate{PrivateKey: key, Leaf: leaf},
		Chain:       chain,
		Identity:    id.String(),
		Serial:      leaf.SerialNumber.Text(16),
		NotAfter:    leaf.NotAfter,
		Bundle:      bundle,
		Roots:       x509.NewCertPool(),
		key:         key,
		id:          id,
	}
	for _, x := range chain {
		c.Certificate.Certificate = append(c.Certificate.Certificate, x.Raw)
	}
	for _, r := range bundle {
		c.Roots.AddCert(r)
	}
	return c, nil
}

// Key returns the private key.
func (c *Credentials) Key() crypto.Signer { return c.key }

// KeyURI is the pkcs11: or tpm: URI of the key when it is held in a device, ""
// when it is in key.pem.
func (c *Credentials) KeyURI() string { return c.keyURI }

// NewDeviceCredentials is [NewCredentials] for a key held in a device:
// keyURI (a pkcs11: or tpm: URI) is what the directory records instead of
// the key.
func NewDeviceCredentials(key crypto.Signer, keyURI string, chain, bundle []*x509.Certificate) (*Credentials, error) {
	if !devicekey.IsURI(keyURI) {
		return nil, errors.New("certgatetls: the key URI is not a pkcs11: or tpm: URI")
	}
	c, err := NewCredentials(key, chain, bundle)
	if err != nil {
		return nil, err
	}
	c.keyURI = keyURI
	return c, nil
}

// ReadCredentials reads key.pem, cert.pem and bundle.pem from dir and
// checks them against each other as [NewCredentials] does. A file that
// cannot be read is reported as os.ReadFile reports it (errors.Is(err,
// fs.ErrNotExist) when it is missing); a file that does not parse or does
// not fit the others is named in the error. Like NewCredentials it does not
// judge validity; a [Source] does, and verifies the chain too.
func ReadCredentials(dir string) (*Credentials, error) {
	paths := credentialPaths(dir)
	data, err := readFiles(paths)
	if err != nil {
		return nil, err
	}
	defer clear(data[0])
	return parseCredentials(paths, data)
}

// WriteCredentials writes c into dir (made 0700 if missing): key.pem
// (0600), then cert.pem, then bundle.pem (0644), each replaced atomically
// (a temporary file, fsync, rename). The key comes first so that a cert.pem
// on disk always has its key beside it; a reader of the two files may see
// the new key beside the old certificate for as long as one rename takes,
// and then gets [ErrKeyMismatch] and looks again.
func WriteCredentials(dir string, c *Credentials) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certgatetls: %w", err)
	}
	keyName, keyData, stale := KeyFile, []byte(nil), KeyURIFile
	if c.keyURI != "" {
		keyName, keyData, stale = KeyURIFile, []byte(c.keyURI+"\n"), KeyFile
	} else {
		keyPEM, err := pemutil.EncodePrivateKey(c.key)
		if err != nil {
			return fmt.Errorf("certgatetls: %w", err)
		}
		defer clear(keyPEM)
		keyData = keyPEM
	}
	// A directory holds one of key.pem and key.uri; key.pem wins when both
	// are there, so the other one goes (a key moved into a device).
	if err := os.Remove(filepath.Join(dir, stale)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("certgatetls: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{keyName, keyData, 0o600},
		{CertFile, pemutil.EncodeCertificates(c.Chain...), 0o644},
		{BundleFile, pemutil.EncodeCertificates(c.Bundle...), 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("certgatetls: %w", err)
		}
	}
	return nil
}

// ReadLeaf returns the leaf of dir/cert.pem alone, for a look at the
// certificate without its key (what the agent's status shows, whether a
// directory needs enrolling). Errors are as [ReadCredentials]'s.
func ReadLeaf(dir string) (*x509.Certificate, error) {
	path := filepath.Join(dir, CertFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %s: %w", path, err)
	}
	return chain[0], nil
}

// ReadServerURL returns what dir/server.url holds, without the newline.
// A missing file is reported as os.ReadFile reports it.
func ReadServerURL(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ServerURLFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteServerURL replaces dir/server.url with u, atomically.
func WriteServerURL(dir, u string) error {
	if err := atomicfile.Write(filepath.Join(dir, ServerURLFile), []byte(u+"\n"), 0o644); err != nil {
		return fmt.Errorf("certgatetls: %w", err)
	}
	return nil
}

// credentialPaths are the paths of key.pem (key.uri when there is no
// key.pem but a key.uri), cert.pem and bundle.pem in dir, in that order.
func credentialPaths(dir string) [3]string {
	key := filepath.Join(dir, KeyFile)
	if _, err := os.Stat(key); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, KeyURIFile)); err == nil {
			key = filepath.Join(dir, KeyURIFile)
		}
	}
	return [3]string{key, filepath.Join(dir, CertFile), filepath.Join(dir, BundleFile)}
}

func readFiles(paths [3]string) ([3][]byte, error) {
	var data [3][]byte
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			clear(data[0])
			return data, err
		}
		data[i] = b
	}
	return data, nil
}

// parseCredentials parses the three files and checks them against each
// other; errors name the files.
func parseCredentials(paths [3]string, data [3][]byte) (*Credentials, error) {
	var key crypto.Signer
	var keyURI string
	var err error
	if filepath.Base(paths[0]) == KeyURIFile {
		keyURI = strings.TrimSpace(string(data[0]))
		key, err = devicekey.Load(keyURI)
	} else {
		key, err = pemutil.ParsePrivateKey(data[0])
	}
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %s: %w", paths[0], err)
	}
	chain, err := pemutil.ParseCertificates(data[1])
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %s: %w", paths[1], err)
	}
	bundle, err := pemutil.ParseCertificates(data[2])
	if err != nil {
		return nil, fmt.Errorf("certgatetls: %s: %w", paths[2], err)
	}
	c, err := assemble(key, chain, bundle)
	switch {
	case errors.Is(err, ErrKeyMismatch):
		return nil, fmt.Errorf("%w: %s does not hold the key of %s", ErrKeyMismatch, paths[0], paths[1])
	case err != nil:
		return nil, fmt.Errorf("certgatetls: %s: %w", paths[1], err)
	}
	c.keyURI = keyURI
	return c, nil
}

// verifyNow checks that the leaf is valid at now and chains to the bundle;
// errors name the files.
func (c *Credentials) verifyNow(paths [3]string, now time.Time) error {
	leaf := c.Certificate.Leaf
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("certgatetls: %s is not valid before %s (now %s)", paths[1], utc(leaf.NotBefore), utc(now))
	case now.After(leaf.NotAfter):
		return fmt.Errorf("certgatetls: %s expired at %s (now %s); renew it with `certgate agent` or enroll again", paths[1], utc(leaf.NotAfter), utc(now))
	}
	inter := x509.NewCertPool()
	for _, x := range c.Chain[1:] {
		inter.AddCert(x)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("certgatetls: %s does not verify against %s: %w", paths[1], paths[2], err)
	}
	return nil
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

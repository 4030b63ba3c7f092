// Package enroll is the client side of enrollment: make a key where the
// client lives, send only a CSR with a one-time token, check what comes back,
// and write key.pem (0600), cert.pem (leaf then intermediate) and bundle.pem
// atomically. The private key never leaves this process except into
// key.pem.
package enroll

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/atomicfile"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/token"
)

// File names inside an enrollment directory.
const (
	KeyFile    = "key.pem"
	CertFile   = "cert.pem"
	BundleFile = "bundle.pem"
	// ServerURLFile holds the server URL from the token, so the agent knows
	// where to renew without being told again.
	ServerURLFile = "server.url"
)

// Result describes what was written.
type Result struct {
	Dir      string
	Identity identity.ID
	Serial   string
	NotAfter time.Time
}

// Options for Enroll.
type Options struct {
	Token   string
	OutDir  string
	KeyType keytype.Type // keytype.Default if empty
	Now     func() time.Time
	// DNSNames and IPAddresses go into the request besides the SPIFFE ID,
	// for a certificate that also serves TLS: the server issues them only
	// to gateway identities (spiffe://TD/gateway/<name>), and Enroll checks
	// that the certificate names every one of them.
	DNSNames    []string
	IPAddresses []net.IP
}

// Enroll redeems a token and writes the credentials into o.OutDir.
func Enroll(ctx context.Context, o Options) (Result, error) {
	tok, err := token.Parse(o.Token)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !o.Now().Before(tok.ExpiresAt) {
		return Result{}, fmt.Errorf("enroll: token expired at %s; ask for a new one", tok.ExpiresAt.Format(time.RFC3339))
	}
	if o.KeyType == "" {
		o.KeyType = keytype.Default
	}
	key, err := keytype.Generate(o.KeyType)
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	var csrPEM []byte
	if len(o.DNSNames)+len(o.IPAddresses) > 0 {
		csrPEM, err = csr.CreateWithHosts(key, tok.Identity, o.DNSNames, o.IPAddresses)
	} else {
		csrPEM, err = csr.Create(key, tok.Identity)
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	u, _ := url.Parse(tok.ServerURL)
	var pinned *x509.Certificate
	cl, err := apiclient.New(apiclient.Options{ServerURL: tok.ServerURL, VerifyConnection: apiclient.PinnedRoot(tok.RootFingerprint, u.Hostname(), &pinned)})
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	defer cl.CloseIdleConnections()
	resp, err := cl.Enroll(ctx, o.Token, string(csrPEM))
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	leaf, chain, bundle, err := check(resp.Certificate, resp.Chain, resp.Bundle, key, tok, o.Now())
	if err != nil {
		return Result{}, err
	}
	if err := CheckHosts(leaf, o.DNSNames, o.IPAddresses); err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	if err := Write(o.OutDir, key, append([]*x509.Certificate{leaf}, chain...), bundle); err != nil {
		return Result{}, err
	}
	if err := atomicfile.Write(filepath.Join(o.OutDir, ServerURLFile), []byte(tok.ServerURL+"\n"), 0o644); err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	return Result{Dir: o.OutDir, Identity: tok.Identity, Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter}, nil
}

// check makes sure the answer is a certificate for our key and identity
// that chains to the root the token pins.
func check(leafPEM, chainPEM, bundlePEM string, key crypto.Signer, tok token.Token, now time.Time) (*x509.Certificate, []*x509.Certificate, []*x509.Certificate, error) {
	leaves, err := pemutil.ParseCertificates([]byte(leafPEM))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("enroll: server's certificate: %w", err)
	}
	chain, err := pemutil.ParseCertificates([]byte(chainPEM))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("enroll: server's chain: %w", err)
	}
	bundle, err := pemutil.ParseCertificates([]byte(bundlePEM))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("enroll: server's bundle: %w", err)
	}
	leaf := leaves[0]
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, nil, nil, errors.New("enroll: the server returned a certificate for another key")
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil || id != tok.Identity {
		return nil, nil, nil, fmt.Errorf("enroll: the server returned a certificate for %v, not %s", id, tok.Identity)
	}
	roots := x509.NewCertPool()
	pinnedFound := false
	for _, r := range bundle {
		sum := sha256.Sum256(r.Raw)
		if hex.EncodeToString(sum[:]) == tok.RootFingerprint {
			pinnedFound = true
			roots.AddCert(r)
		}
	}
	if !pinnedFound {
		return nil, nil, nil, errors.New("enroll: the bundle does not contain the root the token pins")
	}
	inters := x509.NewCertPool()
	for _, c := range chain {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("enroll: the new certificate does not verify: %w", err)
	}
	return leaf, chain, bundle, nil
}

// CheckHosts reports an error unless cert names every one of dns and ips.
func CheckHosts(cert *x509.Certificate, dns []string, ips []net.IP) error {
	var missing []string
	for _, d := range dns {
		if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, d) }) {
			missing = append(missing, d)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the certificate does not name %s", strings.Join(missing, ", "))
	}
	return nil
}

// Write stores key, chain (leaf first) and bundle in dir: key.pem 0600, the
// others 0644, each replaced atomically. The key is written first so that a
// cert.pem on disk always has its key beside it.
func Write(dir string, key crypto.Signer, chain, bundle []*x509.Certificate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	keyPEM, err := pemutil.EncodePrivateKey(key)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{KeyFile, keyPEM, 0o600},
		{CertFile, pemutil.EncodeCertificates(chain...), 0o644},
		{BundleFile, pemutil.EncodeCertificates(bundle...), 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
	}
	return nil
}

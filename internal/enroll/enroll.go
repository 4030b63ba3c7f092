// Package enroll is the client side of enrollment: make a key where the
// client lives, send only a CSR with a one-time token, check what comes back,
// and write the credentials directory (key.pem, cert.pem, bundle.pem and
// server.url) in certgatetls's format through credsdir, which refuses a
// directory of another identity (unless [Options.Force]) before the token
// is redeemed. The private key never leaves this process except into
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
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/credsdir"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/devicekey"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/token"
	"github.com/certgate/certgate/internal/wire"
)

// Result describes what was written.
type Result struct {
	Dir      string
	Identity identity.ID
	Serial   string
	NotAfter time.Time
	// Backup is where Force moved what Dir held before (Replaced says
	// what that was); "" when nothing was moved.
	Backup, Replaced string
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
	// KeyStore, when set, is the device the key is made in: the RFC 7512
	// URI of a PKCS#11 token (module path, token, pin-source) or the tpm:
	// URI of a TPM 2.0 (tpm:device=/dev/tpmrm0, tpm:simulator=HOST:PORT).
	// The key is generated inside it and never leaves it, and the
	// directory records its URI (key.uri) instead.
	KeyStore string
	// Force lets Enroll write into a directory that holds another
	// identity's credentials or files that are not a certgate identity:
	// they are moved to a backup directory inside it first
	// (credsdir.Backup). Without it such a directory is refused before
	// the token is redeemed.
	Force bool
}

// Enroll redeems a token and writes the credentials into o.OutDir.
func Enroll(ctx context.Context, o Options) (_ Result, err error) {
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
	// Before anything is spent: the token, or a key in a device.
	if _, err := credsdir.Check(o.OutDir, tok.Identity.String()); err != nil {
		var refused *credsdir.RefusedError
		if !o.Force || !errors.As(err, &refused) {
			return Result{}, fmt.Errorf("enroll: %w", err)
		}
	}
	var key crypto.Signer
	var keyURI string
	if o.KeyStore != "" {
		key, keyURI, err = devicekey.Generate(o.KeyStore, o.KeyType, "certgate "+tok.Identity.String())
		if err != nil {
			return Result{}, fmt.Errorf("enroll: %w", err)
		}
		defer func() {
			if err != nil { // the key of a certificate we do not have is useless
				_ = devicekey.Delete(keyURI)
			}
		}()
	} else if key, err = keytype.Generate(o.KeyType); err != nil {
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
	creds, err := check(resp, key, tok, o.Now())
	if err != nil {
		return Result{}, err
	}
	leaf := creds.Chain[0]
	if err := CheckHosts(leaf, o.DNSNames, o.IPAddresses); err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	if keyURI != "" {
		if creds, err = certgatetls.NewDeviceCredentials(key, keyURI, creds.Chain, creds.Bundle); err != nil {
			return Result{}, fmt.Errorf("enroll: %w", err)
		}
	}
	res := Result{Dir: o.OutDir, Identity: tok.Identity, Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter}
	if o.Force {
		// Looked at again: the directory may have changed while the
		// server answered.
		h, err := credsdir.Check(o.OutDir, tok.Identity.String())
		var refused *credsdir.RefusedError
		if errors.As(err, &refused) {
			if res.Backup, err = credsdir.Backup(o.OutDir, o.Now()); err != nil {
				return Result{}, fmt.Errorf("enroll: %w", err)
			}
			res.Replaced = h.What()
		} else if err != nil {
			return Result{}, fmt.Errorf("enroll: %w", err)
		}
	}
	if err := credsdir.Write(o.OutDir, creds); err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	// The server URL from the token, so the agent knows where to renew
	// without being told again.
	if err := certgatetls.WriteServerURL(o.OutDir, tok.ServerURL); err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	return res, nil
}

// check makes sure the answer is a certificate for our key and identity
// that chains to the root the token pins.
func check(resp wire.EnrollResponse, key crypto.Signer, tok token.Token, now time.Time) (*certgatetls.Credentials, error) {
	c, err := Credentials(resp, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if c.Identity != tok.Identity.String() {
		return nil, fmt.Errorf("enroll: the server returned a certificate for %s, not %s", c.Identity, tok.Identity)
	}
	roots := x509.NewCertPool()
	pinnedFound := false
	for _, r := range c.Bundle {
		sum := sha256.Sum256(r.Raw)
		if hex.EncodeToString(sum[:]) == tok.RootFingerprint {
			pinnedFound = true
			roots.AddCert(r)
		}
	}
	if !pinnedFound {
		return nil, errors.New("enroll: the bundle does not contain the root the token pins")
	}
	if err := VerifyClient(c, roots, now); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return c, nil
}

// Credentials turns the server's answer to an enrollment or a renewal into
// credentials for key: the certificate, its chain and the bundle parsed,
// the certificate checked to be for key and to carry a SPIFFE ID. For which
// identity it must be, and which roots must verify it, are the caller's to
// check ([VerifyClient]).
func Credentials(resp wire.EnrollResponse, key crypto.Signer) (*certgatetls.Credentials, error) {
	leaves, err := pemutil.ParseCertificates([]byte(resp.Certificate))
	if err != nil {
		return nil, fmt.Errorf("the server's certificate: %w", err)
	}
	var chain []*x509.Certificate
	if resp.Chain != "" {
		if chain, err = pemutil.ParseCertificates([]byte(resp.Chain)); err != nil {
			return nil, fmt.Errorf("the server's chain: %w", err)
		}
	}
	bundle, err := pemutil.ParseCertificates([]byte(resp.Bundle))
	if err != nil {
		return nil, fmt.Errorf("the server's bundle: %w", err)
	}
	c, err := certgatetls.NewCredentials(key, append(leaves[:1:1], chain...), bundle)
	if errors.Is(err, certgatetls.ErrKeyMismatch) {
		return nil, errors.New("the server returned a certificate for another key")
	}
	if err != nil {
		return nil, fmt.Errorf("the server's answer: %w", err)
	}
	return c, nil
}

// VerifyClient checks that c's certificate verifies, with its chain, up to
// roots at now, for client authentication.
func VerifyClient(c *certgatetls.Credentials, roots *x509.CertPool, now time.Time) error {
	inters := x509.NewCertPool()
	for _, x := range c.Chain[1:] {
		inters.AddCert(x)
	}
	if _, err := c.Chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the new certificate does not verify: %w", err)
	}
	return nil
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

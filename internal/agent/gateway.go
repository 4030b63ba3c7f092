package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/token"
)

// GatewayOptions describe a gateway's own certificate: the identity
// section of its config, where it keeps its credentials and how it
// enrolls. Errors name the config fields.
type GatewayOptions struct {
	Dir         string // identity.dir
	TrustDomain string
	// Token is the enrollment token given on the command line or in
	// CERTGATE_TOKEN; TokenFile (identity.token_file) is read when it is
	// empty. Either is used only while Dir holds no valid certificate.
	Token, TokenFile string
	KeyType          string // identity.key_type; keytype.Default if empty
	// KeyStore (identity.key_store) is the device the key is made in: a
	// pkcs11: or tpm: URI (enroll.Options.KeyStore); renewals make the
	// next key in the same device. Empty: key.pem.
	KeyStore string
	// Hosts are identity.hosts as written (for the log); DNSNames and
	// IPAddresses are the same hosts split by kind.
	Hosts       []string
	DNSNames    []string
	IPAddresses []net.IP
	// ServerURLs are the config's servers: the agent renews with the first
	// when Dir holds no server.url.
	ServerURLs []string
	// Force (certgate gateway --force) lets the enrollment move what Dir
	// holds of another identity, or files that are not a certgate
	// identity, to a backup directory; a certificate that does not parse
	// then needs a token instead of stopping the gateway.
	Force bool
	Clock Clock
	Log   *slog.Logger
}

// Gateway is a gateway's own certificate: enrolled once with a token for
// spiffe://TD/gateway/<name>, then renewed by an [Agent] running inside the
// gateway.
type Gateway struct {
	// Agent renews the certificate; the caller runs it.
	Agent *Agent
	// ServerURL is where the agent renews: the server URL the token named.
	ServerURL string
}

// Certificate returns the current certificate.
func (g *Gateway) Certificate() *tls.Certificate {
	c, _ := g.Agent.GetClientCertificate(nil) // never fails
	return c
}

// GetClientCertificate presents the current certificate to the server.
func (g *Gateway) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return g.Certificate(), nil
}

// SetupGateway loads the gateway's credentials from o.Dir, enrolling first
// with the token when the directory holds no certificate or only an
// expired one, checks that the certificate can do a gateway's work, and
// returns the agent that will renew it. It does not start the agent.
func SetupGateway(ctx context.Context, o GatewayOptions) (*Gateway, error) {
	leaf, why, err := readGatewayLeaf(o.Dir, o.Clock.Now())
	if err != nil && !o.Force {
		return nil, err
	}
	if err != nil {
		why = err.Error()
	}
	if why != "" {
		tok, err := gatewayToken(o.Token, o.TokenFile, o.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("gateway: %s: %w", why, err)
		}
		if err := redeemGatewayToken(ctx, o, tok); err != nil {
			return nil, err
		}
		if leaf, _, err = readGatewayLeaf(o.Dir, o.Clock.Now()); err != nil {
			return nil, err
		}
	} else if o.Token != "" {
		o.Log.Info("identity: the directory holds a valid certificate; the enrollment token is not used", "dir", o.Dir)
	}
	if err := checkGatewayCertificate(o, leaf); err != nil {
		return nil, err
	}
	if err := enroll.CheckHosts(leaf, o.DNSNames, o.IPAddresses); err != nil {
		o.Log.Warn("identity: identity.hosts name hosts the certificate lacks; renewals keep the certificate's names, enroll again with a new token to change them",
			"err", err, "dns", leaf.DNSNames, "ips", leaf.IPAddresses)
	}
	serverURL, err := ServerURL(o.Dir, "")
	if err != nil {
		if len(o.ServerURLs) == 0 {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		serverURL = o.ServerURLs[0]
	}
	a, err := New(Options{Dir: o.Dir, ServerURL: serverURL, Clock: o.Clock, Log: o.Log.With("component", "identity")})
	if err != nil {
		return nil, fmt.Errorf("gateway: identity.dir: %w", err)
	}
	return &Gateway{Agent: a, ServerURL: serverURL}, nil
}

// readGatewayLeaf reads the leaf of dir/cert.pem. When the directory holds
// no certificate, or an expired one, why says so (a token fixes both); a
// certificate that does not parse is an error. The agent checks the key,
// chain and bundle when it loads the directory.
func readGatewayLeaf(dir string, now time.Time) (leaf *x509.Certificate, why string, err error) {
	leaf, err = certgatetls.ReadLeaf(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("identity.dir %s holds no certificate", dir), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("gateway: identity.dir: %w", err)
	}
	if !now.Before(leaf.NotAfter) {
		return nil, fmt.Sprintf("the certificate in %s expired at %s", dir, leaf.NotAfter.UTC().Format(time.RFC3339)), nil
	}
	return leaf, "", nil
}

// checkGatewayCertificate makes sure the enrolled certificate can do a
// gateway's work: serve TLS, and follow the server's feed as a gateway.
func checkGatewayCertificate(o GatewayOptions, leaf *x509.Certificate) error {
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return fmt.Errorf("gateway: the certificate in %s: %w", o.Dir, err)
	}
	if !id.Under(identity.GatewayPrefix) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("gateway: the certificate in %s is for %s, which cannot serve TLS as a gateway; enroll with a token for spiffe://%s%s<name>",
			o.Dir, id, o.TrustDomain, identity.GatewayPrefix)
	}
	return nil
}

// gatewayToken returns the token: tok if given, else the content of file
// (identity.token_file).
func gatewayToken(tok, file, td string) (string, error) {
	if tok != "" {
		return tok, nil
	}
	if file == "" {
		return "", fmt.Errorf("give an enrollment token for spiffe://%s%s<name> with --token, CERTGATE_TOKEN or identity.token_file", td, identity.GatewayPrefix)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("identity.token_file: %w", err)
	}
	if tok = strings.TrimSpace(string(b)); tok == "" {
		return "", fmt.Errorf("identity.token_file: %s is empty", file)
	}
	return tok, nil
}

// redeemGatewayToken redeems tok for the gateway's identity with its host
// names.
func redeemGatewayToken(ctx context.Context, o GatewayOptions, tok string) error {
	parsed, err := token.Parse(tok)
	if err != nil {
		return fmt.Errorf("gateway: enrollment token: %w", err)
	}
	if !parsed.Identity.MemberOf(o.TrustDomain) || !parsed.Identity.Under(identity.GatewayPrefix) {
		return fmt.Errorf("gateway: the enrollment token is for %s; a gateway needs a token for spiffe://%s%s<name>", parsed.Identity, o.TrustDomain, identity.GatewayPrefix)
	}
	kt := keytype.Default
	if o.KeyType != "" {
		if kt, err = keytype.Parse(o.KeyType); err != nil {
			return fmt.Errorf("gateway: identity.key_type: %w", err)
		}
	}
	res, err := enroll.Enroll(ctx, enroll.Options{Token: tok, OutDir: o.Dir, KeyType: kt, KeyStore: o.KeyStore, Now: o.Clock.Now, DNSNames: o.DNSNames, IPAddresses: o.IPAddresses, Force: o.Force})
	if err != nil {
		return fmt.Errorf("gateway: enrolling %s: %w", parsed.Identity, err)
	}
	if res.Backup != "" {
		o.Log.Warn("identity: --force moved what identity.dir held to a backup directory", "dir", o.Dir, "held", res.Replaced, "backup", res.Backup)
	}
	o.Log.Info("identity: enrolled", "identity", res.Identity.String(), "serial", res.Serial, "not_after", res.NotAfter, "dir", res.Dir, "hosts", o.Hosts)
	return nil
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/enroll"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/token"
)

// gatewayIdentity is the gateway's own certificate when the config has an
// identity section: enrolled once with a token, then renewed by an agent
// running inside the gateway.
type gatewayIdentity struct {
	agent *agent.Agent
	// serverURL is where the agent renews: the server URL the token named.
	serverURL string
}

// certificate returns the current certificate, for gateway.Options.
func (gi *gatewayIdentity) certificate() *tls.Certificate {
	c, _ := gi.agent.GetClientCertificate(nil) // never fails
	return c
}

// getClientCertificate presents the current certificate to the server.
func (gi *gatewayIdentity) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return gi.certificate(), nil
}

// setupGatewayIdentity loads the gateway's credentials from identity.dir,
// enrolling first with the token when the directory holds no certificate
// or only an expired one, and returns the agent that will renew them. It
// does not start the agent.
func setupGatewayIdentity(ctx context.Context, log *slog.Logger, cfg *config.Gateway, tok string, clk agent.Clock) (*gatewayIdentity, error) {
	id := cfg.Identity
	leaf, why, err := readGatewayLeaf(id.Dir, clk.Now())
	if err != nil {
		return nil, err
	}
	if why != "" {
		if tok, err = gatewayToken(tok, id.TokenFile, cfg.TrustDomain); err != nil {
			return nil, fmt.Errorf("gateway: %s: %w", why, err)
		}
		if err := redeemGatewayToken(ctx, log, cfg, tok, clk); err != nil {
			return nil, err
		}
		if leaf, _, err = readGatewayLeaf(id.Dir, clk.Now()); err != nil {
			return nil, err
		}
	} else if tok != "" {
		log.Info("identity: the directory holds a valid certificate; the enrollment token is not used", "dir", id.Dir)
	}
	if err := checkGatewayCertificate(cfg, leaf); err != nil {
		return nil, err
	}
	dns, ips := id.HostNames()
	if err := enroll.CheckHosts(leaf, dns, ips); err != nil {
		log.Warn("identity: identity.hosts name hosts the certificate lacks; renewals keep the certificate's names, enroll again with a new token to change them",
			"err", err, "dns", leaf.DNSNames, "ips", leaf.IPAddresses)
	}
	serverURL, err := agent.ServerURL(id.Dir, "")
	if err != nil {
		urls := cfg.ServerURLs()
		if len(urls) == 0 {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		serverURL = urls[0]
	}
	a, err := agent.New(agent.Options{Dir: id.Dir, ServerURL: serverURL, Clock: clk, Log: log.With("component", "identity")})
	if err != nil {
		return nil, fmt.Errorf("gateway: identity.dir: %w", err)
	}
	return &gatewayIdentity{agent: a, serverURL: serverURL}, nil
}

// readGatewayLeaf reads the leaf of dir/cert.pem. When the directory holds
// no certificate, or an expired one, why says so (a token fixes both); a
// certificate that does not parse is an error. The agent checks the key,
// chain and bundle when it loads the directory.
func readGatewayLeaf(dir string, now time.Time) (leaf *x509.Certificate, why string, err error) {
	path := filepath.Join(dir, enroll.CertFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("identity.dir %s holds no certificate", dir), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("gateway: identity.dir: %w", err)
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, "", fmt.Errorf("gateway: identity.dir: %s: %w", path, err)
	}
	if !now.Before(certs[0].NotAfter) {
		return nil, fmt.Sprintf("the certificate in %s expired at %s", dir, certs[0].NotAfter.UTC().Format(time.RFC3339)), nil
	}
	return certs[0], "", nil
}

// checkGatewayCertificate makes sure the enrolled certificate can do a
// gateway's work: serve TLS, and follow the server's feed as a gateway.
func checkGatewayCertificate(cfg *config.Gateway, leaf *x509.Certificate) error {
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return fmt.Errorf("gateway: the certificate in %s: %w", cfg.Identity.Dir, err)
	}
	if !strings.HasPrefix(id.Path(), ca.GatewayPathPrefix) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("gateway: the certificate in %s is for %s, which cannot serve TLS as a gateway; enroll with a token for spiffe://%s/gateway/<name>",
			cfg.Identity.Dir, id, cfg.TrustDomain)
	}
	return nil
}

// gatewayToken returns the token: from the flag or CERTGATE_TOKEN (tok),
// else from identity.token_file.
func gatewayToken(tok, file, td string) (string, error) {
	if tok != "" {
		return tok, nil
	}
	if file == "" {
		return "", fmt.Errorf("give an enrollment token for spiffe://%s/gateway/<name> with --token, CERTGATE_TOKEN or identity.token_file", td)
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

// redeemGatewayToken redeems tok for the gateway's identity with its host names.
func redeemGatewayToken(ctx context.Context, log *slog.Logger, cfg *config.Gateway, tok string, clk agent.Clock) error {
	parsed, err := token.Parse(tok)
	if err != nil {
		return fmt.Errorf("gateway: enrollment token: %w", err)
	}
	if !parsed.Identity.MemberOf(cfg.TrustDomain) || !strings.HasPrefix(parsed.Identity.Path(), ca.GatewayPathPrefix) {
		return fmt.Errorf("gateway: the enrollment token is for %s; a gateway needs a token for spiffe://%s/gateway/<name>", parsed.Identity, cfg.TrustDomain)
	}
	kt := keytype.Default
	if cfg.Identity.KeyType != "" {
		if kt, err = keytype.Parse(cfg.Identity.KeyType); err != nil {
			return fmt.Errorf("gateway: identity.key_type: %w", err)
		}
	}
	dns, ips := cfg.Identity.HostNames()
	res, err := enroll.Enroll(ctx, enroll.Options{Token: tok, OutDir: cfg.Identity.Dir, KeyType: kt, Now: clk.Now, DNSNames: dns, IPAddresses: ips})
	if err != nil {
		return fmt.Errorf("gateway: enrolling %s: %w", parsed.Identity, err)
	}
	log.Info("identity: enrolled", "identity", res.Identity.String(), "serial", res.Serial, "not_after", res.NotAfter, "dir", res.Dir, "hosts", cfg.Identity.Hosts)
	return nil
}

package gateway

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/pemutil"
)

// Explanation is what the gateway would do with a certificate and a
// request, worked out from the config alone, without traffic.
type Explanation struct {
	Leaf *x509.Certificate
	// Identity is the SPIFFE ID, "" if the certificate has none.
	Identity string
	// Refused is the handshake refusal, nil when the certificate passes.
	// Revocation is not checked: that needs the server.
	Refused  *VerifyError
	Decision authz.Decision
}

// Explain checks chain (leaf first, then intermediates) against cfg's
// bundle and trust domain at now, and the request (host, method, path)
// against its routes. It reads the bundle but not the gateway's key.
func Explain(cfg *config.Gateway, chain []*x509.Certificate, now time.Time, host, method, path string) (*Explanation, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("gateway: no certificate to check")
	}
	data, err := os.ReadFile(cfg.Bundle)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle: %w", err)
	}
	roots, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("gateway: bundle %s: %w", cfg.Bundle, err)
	}
	rcs := make([]authz.RouteConfig, len(cfg.Routes))
	for i, r := range cfg.Routes {
		rcs[i] = authz.RouteConfig{Name: r.Name, Host: r.Host, PathPrefix: r.PathPrefix, Methods: r.Methods, Allow: r.Allow}
	}
	policy, err := authz.New(rcs)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	ex := &Explanation{Leaf: chain[0]}
	if id, err := identity.FromCertificate(chain[0]); err == nil {
		ex.Identity = id.String()
	}
	if _, verr := newTrust(cfg.TrustDomain, roots).verifyChain(chain, now); verr != nil {
		ex.Refused = verr
	}
	ex.Decision = policy.Authorize(host, method, path, ex.Identity)
	return ex, nil
}

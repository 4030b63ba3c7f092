package gateway

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/identity"
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
// against its routes, with the same code the gateway runs.
func Explain(cfg *Config, chain []*x509.Certificate, now time.Time, host, method, path string) (*Explanation, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("gateway: no certificate to check")
	}
	ex := &Explanation{Leaf: chain[0]}
	if id, err := identity.FromCertificate(chain[0]); err == nil {
		ex.Identity = id.String()
	}
	if _, verr := newTrust(cfg.trustDomain, cfg.roots).verifyChain(chain, now); verr != nil {
		ex.Refused = verr
	}
	ex.Decision = cfg.policy.Authorize(host, method, path, ex.Identity)
	return ex, nil
}

package gateway

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/gateway/h1"
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
	Refused *VerifyError
	// Request is the request in the canonical form the gateway routes
	// on: Method, Host and Path are what the route decision saw.
	Method, Host, Path string
	// BadRequest is why the gateway refuses the request itself (400 for
	// a path or host it cannot make unambiguous, 501 for an unknown
	// method) before any route is consulted; nil when it does not.
	BadRequest *h1.Error
	Decision   authz.Decision
}

// Explain checks chain (leaf first, then intermediates) against cfg's
// bundle and trust domain at now, and the request (host, method and
// origin-form target, path and query as a client would send them)
// against its routes, with the same canonicalization and matching the
// gateway runs.
func Explain(cfg *Config, chain []*x509.Certificate, now time.Time, host, method, target string) (*Explanation, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("gateway: no certificate to check")
	}
	ex := &Explanation{Leaf: chain[0]}
	if id, err := identity.FromCertificate(chain[0]); err == nil {
		ex.Identity = id.String()
	}
	if _, verr := newTrust(cfg.trustDomain, cfg.roots, cfg.intermediates).verifyChain(chain, now); verr != nil {
		ex.Refused = verr
	}
	ex.Method, ex.Host, ex.Path = method, host, target
	cr, he := cfg.canonicalize(method, host, target)
	if he != nil {
		ex.BadRequest = he
		return ex, nil
	}
	ex.Method, ex.Host, ex.Path = cr.method, cr.host, cr.path
	ex.Decision = cfg.policy.Authorize(cr.host, cr.method, cr.match, ex.Identity)
	return ex, nil
}

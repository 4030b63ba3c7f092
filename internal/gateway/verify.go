package gateway

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/certgate/certgate/internal/identity"
)

// Reason is why a client certificate was refused in the handshake.
type Reason uint8

// The reasons, in the order the checks run.
const (
	ReasonOK Reason = iota
	ReasonNoCertificate
	ReasonUnknownAuthority
	ReasonExpired
	ReasonNotYetValid
	ReasonWrongUsage
	ReasonBadIdentity
	ReasonRevoked
	// ReasonHandshakeError is any other handshake failure: protocol
	// mismatch, timeout, a client that hangs up.
	ReasonHandshakeError
)

var reasonNames = [...]string{
	ReasonOK:               "ok",
	ReasonNoCertificate:    "no_certificate",
	ReasonUnknownAuthority: "unknown_authority",
	ReasonExpired:          "expired",
	ReasonNotYetValid:      "not_yet_valid",
	ReasonWrongUsage:       "wrong_usage",
	ReasonBadIdentity:      "bad_identity",
	ReasonRevoked:          "revoked",
	ReasonHandshakeError:   "handshake_error",
}

// String returns the reason as it appears in logs and metric labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", r)
}

// VerifyError is a refused client certificate.
type VerifyError struct {
	Reason Reason
	Err    error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("gateway: client certificate refused (%s): %v", e.Reason, e.Err)
}

func (e *VerifyError) Unwrap() error { return e.Err }

func refuse(r Reason, format string, args ...any) *VerifyError {
	return &VerifyError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// maxCachedIntermediates bounds the verified-intermediate cache; a CA has a
// handful, so the bound only matters against a flood of distinct chains.
const maxCachedIntermediates = 256

// trust is one generation of trust material: the roots, the trust domain,
// and the intermediates already verified against those roots. A reload
// builds a new trust, which drops the cache with it.
type trust struct {
	td    string
	roots *x509.CertPool

	mu    sync.RWMutex
	inter map[string]*verifiedIntermediate // keyed by the DER bytes
}

// verifiedIntermediate is an intermediate whose chain to a root verified
// for client auth. A leaf it signed needs only its own checks and one
// signature check, not a chain build.
type verifiedIntermediate struct {
	cert *x509.Certificate
	// notBefore and notAfter are the window in which the whole chain above
	// the leaf is valid.
	notBefore, notAfter time.Time
}

func newTrust(td string, roots []*x509.Certificate) *trust {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return &trust{td: td, roots: pool, inter: make(map[string]*verifiedIntermediate)}
}

func (t *trust) cached(raw []byte) *verifiedIntermediate {
	t.mu.RLock()
	vi := t.inter[string(raw)]
	t.mu.RUnlock()
	return vi
}

// remember caches the intermediate of a chain x509.Verify built (leaf,
// intermediate, root) when it is the one the client sent after its leaf.
// It is called only after the leaf passed every check of the fast path's
// shape and the trust domain check, so that the name constraints the
// chain verified (for one URI in the trust domain) hold for every leaf the
// fast path accepts.
func (t *trust) remember(sent *x509.Certificate, chain []*x509.Certificate) {
	if len(chain) != 3 || !chain[1].Equal(sent) {
		return
	}
	vi := &verifiedIntermediate{cert: chain[1], notBefore: chain[1].NotBefore, notAfter: chain[1].NotAfter}
	if chain[2].NotBefore.After(vi.notBefore) {
		vi.notBefore = chain[2].NotBefore
	}
	if chain[2].NotAfter.Before(vi.notAfter) {
		vi.notAfter = chain[2].NotAfter
	}
	t.mu.Lock()
	if len(t.inter) < maxCachedIntermediates {
		t.inter[string(chain[1].Raw)] = vi
	}
	t.mu.Unlock()
}

// verifyChain checks that certs (leaf first, then intermediates as the
// client sent them) chain to the roots at now for client auth, and returns
// the leaf's identity. It does not look at revocation.
func (t *trust) verifyChain(certs []*x509.Certificate, now time.Time) (identity.ID, *VerifyError) {
	if len(certs) == 0 {
		return identity.ID{}, refuse(ReasonNoCertificate, "no client certificate")
	}
	leaf := certs[0]
	if now.Before(leaf.NotBefore) {
		return identity.ID{}, refuse(ReasonNotYetValid, "certificate is valid from %s, now is %s", leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return identity.ID{}, refuse(ReasonExpired, "certificate expired at %s, now is %s", leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !hasClientAuth(leaf) {
		return identity.ID{}, refuse(ReasonWrongUsage, "certificate lacks the clientAuth extended key usage")
	}
	if leaf.IsCA {
		return identity.ID{}, refuse(ReasonWrongUsage, "certificate is a CA certificate")
	}
	var verified []*x509.Certificate // the chain x509.Verify built, if it ran
	if vi := t.fastPath(certs); vi != nil {
		if now.Before(vi.notBefore) {
			return identity.ID{}, refuse(ReasonNotYetValid, "issuing CA is valid from %s", vi.notBefore.UTC().Format(time.RFC3339))
		}
		if now.After(vi.notAfter) {
			return identity.ID{}, refuse(ReasonExpired, "issuing CA expired at %s", vi.notAfter.UTC().Format(time.RFC3339))
		}
		if err := leaf.CheckSignatureFrom(vi.cert); err != nil {
			return identity.ID{}, refuse(ReasonUnknownAuthority, "certificate signature does not verify: %v", err)
		}
	} else {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         t.roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return identity.ID{}, classify(err)
		}
		verified = chains[0]
	}
	id, err := identity.FromCertificateIn(leaf, t.td)
	if err != nil {
		return identity.ID{}, refuse(ReasonBadIdentity, "%w", err)
	}
	if verified != nil && fastPathLeaf(leaf) {
		t.remember(certs[1], verified)
	}
	return id, nil
}

// fastPath returns the verified intermediate the client sent right after
// its leaf, if it is cached and the leaf is of a shape the cache covers;
// else nil. Certificates the client sent after that intermediate (a root,
// say) are not needed for the chain and are ignored, as x509.Verify would.
func (t *trust) fastPath(certs []*x509.Certificate) *verifiedIntermediate {
	if len(certs) < 2 || !fastPathLeaf(certs[0]) {
		return nil
	}
	return t.cached(certs[1].Raw)
}

// fastPathLeaf reports whether a leaf carries nothing a name constraint
// could apply to except its one URI (the trust domain check covers that)
// and no critical extension x509.Verify would refuse.
func fastPathLeaf(leaf *x509.Certificate) bool {
	return len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 && len(leaf.EmailAddresses) == 0 &&
		len(leaf.UnhandledCriticalExtensions) == 0 && len(leaf.URIs) == 1
}

func hasClientAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func classify(err error) *VerifyError {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return &VerifyError{Reason: ReasonUnknownAuthority, Err: err}
	case errors.As(err, &ci):
		switch ci.Reason {
		case x509.Expired:
			// crypto/x509 says "current time X is before Y" for a CA
			// certificate that is not valid yet.
			if strings.Contains(ci.Detail, " is before ") {
				return &VerifyError{Reason: ReasonNotYetValid, Err: err}
			}
			return &VerifyError{Reason: ReasonExpired, Err: err}
		case x509.IncompatibleUsage:
			return &VerifyError{Reason: ReasonWrongUsage, Err: err}
		case x509.CANotAuthorizedForThisName:
			return &VerifyError{Reason: ReasonBadIdentity, Err: err}
		}
	}
	return &VerifyError{Reason: ReasonUnknownAuthority, Err: err}
}

package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// maxCachedIssuers bounds the verified-issuer cache; a CA has a handful of
// intermediates, so the bound only matters against a flood of distinct
// chains.
const maxCachedIssuers = 256

// maxCachedLeaves bounds the verified-leaf cache: about 100 bytes an
// entry, so at most ~1 MiB however many distinct certificates connect.
const maxCachedLeaves = 8192

// maxFastCandidates bounds how many certificates the fast path looks at
// for the leaf's issuer before it leaves the work to x509.Verify.
const maxFastCandidates = 8

// trust is one generation of trust material: the roots, the trust domain,
// the known intermediates, and the issuers already verified against those
// roots. A reload builds a new trust, which drops the cache with it.
//
// Every verdict is the one x509.Verify gives for the leaf with the roots
// as anchors and, as intermediates, what the client sent after its leaf
// plus the known intermediates (the CA's, from the bundle file, the
// gateway's own chain or the server's feed: so a client that sends only
// its leaf verifies), followed by the checks of this package (clientAuth
// named, not a CA, a SPIFFE ID in the trust domain).
type trust struct {
	td        string
	roots     *x509.CertPool
	rootCerts []*x509.Certificate
	inter     atomic.Pointer[intermediates]

	mu       sync.RWMutex
	verified map[string]*verifiedIssuer // keyed by the issuer's DER

	// leaves remembers which leaf certificates have already had their
	// signature checked against which verified issuer (leafMu guards it);
	// leafHits and leafMisses count its use (tests, benchmarks).
	leafMu             sync.RWMutex
	leaves             map[[sha256.Size]byte]*verifiedIssuer
	maxLeaves          int // maxCachedLeaves; smaller in tests
	leafHits, leafMiss atomic.Uint64

	// leafInfos is the record of each recent client leaf (leafinfo.go).
	leafInfos leafInfos
}

// intermediates is an immutable set of known intermediates.
type intermediates struct {
	certs []*x509.Certificate
	pool  *x509.CertPool
}

func newIntermediates(certs []*x509.Certificate) *intermediates {
	in := &intermediates{pool: x509.NewCertPool()}
	for _, c := range certs {
		if c.IsCA && c.BasicConstraintsValid {
			in.certs = append(in.certs, c)
			in.pool.AddCert(c)
		}
	}
	return in
}

// verifiedIssuer is a CA certificate (an intermediate or a root) that
// issued a leaf whose chain x509.Verify built, with nothing between it and
// a root but itself: a leaf it signed, of the shape the fast path takes,
// needs only its own checks and one signature check.
type verifiedIssuer struct {
	cert *x509.Certificate
	// notBefore and notAfter are the window in which the issuer and its
	// root are both valid.
	notBefore, notAfter time.Time
}

func newTrust(td string, roots, inter []*x509.Certificate) *trust {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	t := &trust{td: td, roots: pool, rootCerts: roots, verified: make(map[string]*verifiedIssuer),
		leaves: make(map[[sha256.Size]byte]*verifiedIssuer), maxLeaves: maxCachedLeaves}
	t.leafInfos.max = maxCachedLeafInfos
	t.inter.Store(newIntermediates(inter))
	return t
}

// setIntermediates replaces the known intermediates. The verified-issuer
// cache stays: an entry serves only when its issuer is among what the
// client sent or the known intermediates of the moment. The verified-leaf
// cache is dropped (a rotation is rare; its leaves verify again once).
func (t *trust) setIntermediates(certs []*x509.Certificate) {
	t.inter.Store(newIntermediates(certs))
	t.leafMu.Lock()
	clear(t.leaves)
	t.leafMu.Unlock()
}

func (t *trust) cached(raw []byte) *verifiedIssuer {
	t.mu.RLock()
	vi := t.verified[string(raw)]
	t.mu.RUnlock()
	return vi
}

// remember caches the issuer of a chain x509.Verify built, when it is the
// root itself or an intermediate right below a root. It is called only
// for a leaf of the fast path's shape that passed the trust domain check,
// so the name constraints the chain verified (for one URI in the trust
// domain, and nothing else) hold for every leaf the fast path accepts.
func (t *trust) remember(chain []*x509.Certificate) {
	if len(chain) != 2 && len(chain) != 3 {
		return
	}
	vi := &verifiedIssuer{cert: chain[1], notBefore: chain[1].NotBefore, notAfter: chain[1].NotAfter}
	for _, c := range chain[2:] {
		if c.NotBefore.After(vi.notBefore) {
			vi.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(vi.notAfter) {
			vi.notAfter = c.NotAfter
		}
	}
	t.mu.Lock()
	if len(t.verified) < maxCachedIssuers {
		t.verified[string(chain[1].Raw)] = vi
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
	inter := t.inter.Load()
	fast := fastPathLeaf(leaf)
	if !fast || !t.fastPath(leaf, certs[1:], inter, now) {
		pool := inter.pool
		if len(certs) > 1 {
			pool = inter.pool.Clone()
			for _, c := range certs[1:] {
				pool.AddCert(c)
			}
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         t.roots,
			Intermediates: pool,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return identity.ID{}, classify(err)
		}
		id, err := identity.FromCertificateIn(leaf, t.td)
		if err != nil {
			return identity.ID{}, refuse(ReasonBadIdentity, "%w", err)
		}
		if fast {
			t.remember(chains[0])
		}
		return id, nil
	}
	id, err := identity.FromCertificateIn(leaf, t.td)
	if err != nil {
		return identity.ID{}, refuse(ReasonBadIdentity, "%w", err)
	}
	return id, nil
}

// fastPath reports whether leaf verifies against an issuer already
// verified, found among what the client sent and the known intermediates
// and roots (the pool x509.Verify would use), by name (the leaf's issuer
// is its subject, byte for byte), validity window and signature. When it
// does not, the caller builds the chain in full: the fast path only ever
// accepts, it never refuses.
func (t *trust) fastPath(leaf *x509.Certificate, sent []*x509.Certificate, inter *intermediates, now time.Time) bool {
	tried := 0
	try := func(c *x509.Certificate) bool {
		if !bytes.Equal(leaf.RawIssuer, c.RawSubject) {
			return false
		}
		if tried++; tried > maxFastCandidates {
			return false
		}
		vi := t.cached(c.Raw)
		if vi == nil || now.Before(vi.notBefore) || now.After(vi.notAfter) {
			return false
		}
		return t.signedBy(leaf, c, vi)
	}
	for _, list := range [][]*x509.Certificate{sent, inter.certs, t.rootCerts} {
		for _, c := range list {
			if try(c) {
				return true
			}
			if tried > maxFastCandidates {
				return false
			}
		}
	}
	return false
}

// signedBy reports whether leaf's signature verifies under issuer c, whose
// verified-issuer entry is vi, remembering a leaf that did.
//
// Why the verified-leaf cache is sound: the signature check is a pure
// function of the leaf's DER (its to-be-signed bytes and its signature)
// and the issuer's public key. An entry is keyed by the SHA-256 of the
// whole leaf DER (a collision is out of reach, so equal keys mean equal
// bytes) and holds the verifiedIssuer it was checked under, itself keyed
// by the issuer's whole DER, key included; it serves only when the issuer
// the fast path found for this handshake is that same entry. So a hit
// stands for a check that would give the same answer again: only the
// repeated ECDSA verification is skipped. Everything that changes with
// time or state is still checked on every handshake, hit or miss: the
// leaf's and the issuer's validity at now, clientAuth, not a CA, the
// SPIFFE ID in the trust domain (verifyChain, fastPath), revocation of
// the leaf and of its issuers (verifyConnection), and the certificate's
// expiry while connected (the sweep). The cache belongs to one trust
// generation (a reload builds a new one) and is dropped when the known
// intermediates change; it is bounded by maxCachedLeaves. A client that
// reconnects with the same certificate without resuming (many devices,
// or every full handshake of the same client) is the case it serves.
func (t *trust) signedBy(leaf, c *x509.Certificate, vi *verifiedIssuer) bool {
	sum := sha256.Sum256(leaf.Raw)
	t.leafMu.RLock()
	hit := t.leaves[sum] == vi
	t.leafMu.RUnlock()
	if hit {
		t.leafHits.Add(1)
		return true
	}
	t.leafMiss.Add(1)
	if leaf.CheckSignatureFrom(c) != nil {
		return false
	}
	t.leafMu.Lock()
	if len(t.leaves) >= t.maxLeaves {
		// Full: drop an arbitrary entry (map order), which costs that
		// leaf one signature check the next time it comes.
		for k := range t.leaves {
			delete(t.leaves, k)
			break
		}
	}
	t.leaves[sum] = vi
	t.leafMu.Unlock()
	return true
}

// Extensions that make a leaf's verdict depend on more than its issuer:
// certificate policies and their constraints (RFC 5280 section 6.1), which
// x509.Verify evaluates over the whole chain.
var (
	oidCertificatePolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidPolicyMappings      = asn1.ObjectIdentifier{2, 5, 29, 33}
	oidPolicyConstraints   = asn1.ObjectIdentifier{2, 5, 29, 36}
	oidInhibitAnyPolicy    = asn1.ObjectIdentifier{2, 5, 29, 54}
)

// fastPathLeaf reports whether a leaf is of the shape the verified-issuer
// cache covers: nothing a name constraint could apply to except its one
// URI (the trust domain check covers that), no policy extension, and no
// critical extension x509.Verify would refuse.
func fastPathLeaf(leaf *x509.Certificate) bool {
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 ||
		len(leaf.UnhandledCriticalExtensions) != 0 || len(leaf.URIs) != 1 {
		return false
	}
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidCertificatePolicies) || e.Id.Equal(oidPolicyMappings) || e.Id.Equal(oidPolicyConstraints) || e.Id.Equal(oidInhibitAnyPolicy) {
			return false
		}
	}
	return true
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

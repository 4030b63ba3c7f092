package diagnose

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/ocspcheck"
	"github.com/certgate/certgate/internal/store"
)

// Reason codes of a failing [Report]. They are part of the JSON output of
// `certgate verify` that scripts branch on: never rename one.
const (
	CodeEmptyChain        = "empty_chain"                  // no certificate to verify
	CodeExpired           = "expired"                      // a certificate of the chain is past NotAfter
	CodeNotYetValid       = "not_yet_valid"                // a certificate of the chain is before NotBefore
	CodeUnknownAuthority  = "unknown_authority"            // the chain does not lead to a bundle root
	CodeSignatureInvalid  = "signature_invalid"            // a signature does not verify with the issuer's key
	CodeNotCA             = "not_a_ca"                     // an intermediate is not a CA
	CodePathLength        = "path_length"                  // a CA's path length constraint is exceeded
	CodeWrongEKU          = "wrong_eku"                    // the chain is not valid for client auth
	CodeNameConstraint    = "name_constraint"              // a URI is outside a CA's name constraints
	CodeCriticalExtension = "unhandled_critical_extension" // a critical extension x509 does not know
	CodeLeafIsCA          = "leaf_is_ca"                   // the leaf is a CA certificate
	CodeNoURISAN          = "no_uri_san"                   // the leaf has no URI SAN, so no identity
	CodeManyURISANs       = "multiple_uri_sans"            // the leaf has more than one URI SAN
	CodeInvalidSPIFFEID   = "invalid_spiffe_id"            // the URI SAN is not a valid SPIFFE ID
	CodeWrongTrustDomain  = "wrong_trust_domain"           // the SPIFFE ID is in another trust domain
	CodeRevoked           = "revoked"                      // the store records a revocation of the leaf
	CodeRevocationFailed  = "revocation_check_failed"      // the revocation lookup failed
	CodeVerifyFailed      = "verify_failed"                // crypto/x509 refused for a reason not listed above
)

// Warning codes: worth knowing, but they do not make a chain fail.
const (
	CodeNotInStore   = "not_in_store"  // the store has no record of the leaf
	CodeRevokedLater = "revoked_later" // revoked, but after the time checked
)

// RevocationLookup finds what the store recorded about a certificate by its
// serial (lowercase hex). A *store.SQL satisfies it. It returns an error
// wrapping [store.ErrNotFound] for an unknown serial.
type RevocationLookup interface {
	GetCertificate(ctx context.Context, serial string) (store.Certificate, error)
}

// Input is what to diagnose.
type Input struct {
	// Bundle holds the trusted roots (trust anchors).
	Bundle []*x509.Certificate
	// Chain is the leaf first, then any intermediates, in any order.
	Chain []*x509.Certificate
	// At is the time to verify at.
	At time.Time
	// TrustDomain, if set, is the trust domain the leaf's SPIFFE ID must be in.
	TrustDomain string
	// Revocations, if set, is asked whether the leaf is revoked.
	Revocations RevocationLookup
	// Status, if set (and Revocations is not), asks the leaf's OCSP
	// responder whether it is revoked.
	Status StatusChecker
	// Offline says revocation was deliberately not checked; the report
	// says so.
	Offline bool
}

// StatusChecker asks an OCSP responder about a leaf; an
// [ocspcheck.Checker] is one.
type StatusChecker interface {
	Where(leaf *x509.Certificate) (url, source string, err error)
	Check(ctx context.Context, leaf, issuer *x509.Certificate) (ocspcheck.Answer, error)
}

// Reason is one problem (or warning), with a stable code and a message in
// plain words.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Cert describes one certificate of the chain as it was walked.
type Cert struct {
	// Role is "leaf", "intermediate", "root" (a bundle certificate),
	// "self-signed" (a self-signed certificate that is not in the bundle) or
	// "unused" (in the chain given but not on the path from the leaf).
	Role      string    `json:"role"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Serial    string    `json:"serial"`    // lowercase hex
	SPIFFEID  string    `json:"spiffe_id"` // the URI SAN if it is one valid SPIFFE ID, else ""
	EKU       []string  `json:"eku"`       // extended key usages; empty means any
	IsCA      bool      `json:"is_ca"`
	SHA256    string    `json:"sha256"` // lowercase hex fingerprint of the DER
}

// Report is the outcome of [Diagnose].
type Report struct {
	// OK is true when the chain verifies for client auth and no reason was
	// found. Reasons is then empty.
	OK bool `json:"ok"`
	// Identity is the leaf's SPIFFE ID when it has exactly one valid one,
	// whether or not the chain verifies.
	Identity string    `json:"identity"`
	At       time.Time `json:"at"`
	// Reasons lists every problem found, in a fixed order: chain building,
	// then per certificate from the leaf up: validity, CA rules, usages, name
	// constraints; then identity, then revocation.
	Reasons  []Reason `json:"reasons"`
	Warnings []Reason `json:"warnings"`
	Chain    []Cert   `json:"chain"`
	// Revocation says how revocation was checked, and the answer: "OCSP
	// at URL (the certificate's OCSP URL): good, as of ...", "the store:
	// not revoked", or "not checked (--offline)".
	Revocation string `json:"revocation"`
}

// Verdict is the one-line summary: "OK: ..." or "FAIL: " and every reason.
func (r Report) Verdict() string {
	if r.OK {
		leaf := r.Chain[0]
		return fmt.Sprintf("OK: leaf %q verifies for client auth as %s until %s (%s left)",
			leaf.Subject, r.Identity, stamp(leaf.NotAfter), human(leaf.NotAfter.Sub(r.At)))
	}
	msgs := make([]string, len(r.Reasons))
	for i, rs := range r.Reasons {
		msgs[i] = rs.Message
	}
	return "FAIL: " + strings.Join(msgs, "; ")
}

// Codes returns the reason codes in order.
func (r Report) Codes() []string {
	codes := make([]string, len(r.Reasons))
	for i, rs := range r.Reasons {
		codes[i] = rs.Code
	}
	return codes
}

// Diagnose verifies in.Chain against in.Bundle at in.At for client auth and
// explains the outcome. It reports every problem it finds, not only the
// first. It only reads in; the only I/O is in.Revocations and in.Status.
func Diagnose(ctx context.Context, in Input) Report {
	rep := Report{At: in.At, Reasons: []Reason{}, Warnings: []Reason{}, Chain: []Cert{}}
	if len(in.Chain) == 0 || in.Chain[0] == nil {
		rep.Reasons = append(rep.Reasons, Reason{CodeEmptyChain, "no certificate to verify"})
		return rep
	}
	leaf := in.Chain[0]
	d := &diagnosis{in: in, rep: &rep}

	p := walk(leaf, in.Chain[1:], in.Bundle)
	if p.problem != nil {
		d.add(*p.problem)
	}
	for i, c := range p.certs {
		d.checkValidity(c, p.role(i))
	}
	d.checkCA(p)
	d.checkEKU(p)
	d.checkNameConstraints(p)
	d.checkIdentity(leaf)
	d.checkRevocation(ctx, leaf)
	d.checkStatus(ctx, leaf)

	// crypto/x509 has the last word: the verdict is never more lenient than
	// the verifier the gateway runs. Its error is reported only when the
	// checks above found nothing, since it stops at the first problem and
	// those already explain why it fails.
	if err := verifyX509(in); err != nil && len(rep.Reasons) == 0 {
		d.add(fromX509(err))
	}

	for i, c := range p.certs {
		rep.Chain = append(rep.Chain, describe(c, p.role(i)))
	}
	for _, c := range in.Chain[1:] {
		if c != nil && !p.has(c) {
			rep.Chain = append(rep.Chain, describe(c, "unused"))
		}
	}
	rep.OK = len(rep.Reasons) == 0
	return rep
}

type diagnosis struct {
	in  Input
	rep *Report
}

func (d *diagnosis) add(r Reason) { d.rep.Reasons = append(d.rep.Reasons, r) }

func (d *diagnosis) warn(r Reason) { d.rep.Warnings = append(d.rep.Warnings, r) }

func verifyX509(in Input) error {
	roots := x509.NewCertPool()
	for _, c := range in.Bundle {
		if c != nil {
			roots.AddCert(c)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range in.Chain[1:] {
		if c != nil {
			inter.AddCert(c)
		}
	}
	_, err := in.Chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   in.At,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// fromX509 maps an error of x509.Verify to a reason.
func fromX509(err error) Reason {
	msg := "crypto/" + err.Error()
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	var uce x509.UnhandledCriticalExtension
	switch {
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil && strings.Contains(inv.Detail, "before") {
				return Reason{CodeNotYetValid, msg}
			}
			return Reason{CodeExpired, msg}
		case x509.NotAuthorizedToSign:
			return Reason{CodeNotCA, msg}
		case x509.TooManyIntermediates:
			return Reason{CodePathLength, msg}
		case x509.IncompatibleUsage, x509.CANotAuthorizedForExtKeyUsage:
			return Reason{CodeWrongEKU, msg}
		case x509.CANotAuthorizedForThisName, x509.NameConstraintsWithoutSANs,
			x509.UnconstrainedName, x509.TooManyConstraints:
			return Reason{CodeNameConstraint, msg}
		}
	case errors.As(err, &ua):
		return Reason{CodeUnknownAuthority, msg}
	case errors.As(err, &uce):
		return Reason{CodeCriticalExtension, msg}
	}
	return Reason{CodeVerifyFailed, msg}
}

func describe(c *x509.Certificate, role string) Cert {
	sum := sha256.Sum256(c.Raw)
	out := Cert{
		Role:      role,
		Subject:   name(c.Subject.String()),
		Issuer:    name(c.Issuer.String()),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		Serial:    serialHex(c),
		EKU:       ekuNames(c),
		IsCA:      c.BasicConstraintsValid && c.IsCA,
		SHA256:    hex.EncodeToString(sum[:]),
	}
	if id, err := identity.FromCertificate(c); err == nil {
		out.SPIFFEID = id.String()
	}
	return out
}

// serialHex formats a serial the way the store keys it: lowercase hex, no
// leading zeros.
func serialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

package diagnose

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
)

// maxDepth bounds the walk from the leaf up; certgate chains are three
// certificates long and x509 itself refuses long chains far sooner.
const maxDepth = 10

// path is the chain walked from the leaf towards a bundle root.
type path struct {
	certs   []*x509.Certificate // leaf first
	rooted  bool                // the last certificate is in the bundle
	problem *Reason             // why the walk stopped short of a root
}

func (p path) role(i int) string {
	last := i == len(p.certs)-1
	switch {
	case i == 0:
		return "leaf"
	case last && p.rooted:
		return "root"
	case last && selfSigned(p.certs[i]):
		return "self-signed"
	default:
		return "intermediate"
	}
}

func (p path) has(c *x509.Certificate) bool {
	for _, pc := range p.certs {
		if pc.Equal(c) {
			return true
		}
	}
	return false
}

// walk follows issuers from leaf through intermediates to a root of the
// bundle. A candidate issuer has the subject the child names as its issuer
// and a key its signature verifies with; bundle roots are tried first.
func walk(leaf *x509.Certificate, intermediates, bundle []*x509.Certificate) path {
	p := path{certs: []*x509.Certificate{leaf}}
	cur := leaf
	for len(p.certs) <= maxDepth {
		if contains(bundle, cur) {
			p.rooted = true
			return p
		}
		var cands []*x509.Certificate
		for _, c := range bundle {
			if c != nil && bytes.Equal(c.RawSubject, cur.RawIssuer) {
				cands = append(cands, c)
			}
		}
		for _, c := range intermediates {
			if c != nil && bytes.Equal(c.RawSubject, cur.RawIssuer) && !p.has(c) {
				cands = append(cands, c)
			}
		}
		if len(cands) == 0 {
			p.problem = unknownAuthority(cur, p.role(len(p.certs)-1), bundle)
			return p
		}
		next, problem := pickIssuer(cur, p.role(len(p.certs)-1), cands, bundle)
		if problem != nil {
			p.problem = problem
			return p
		}
		p.certs = append(p.certs, next)
		cur = next
	}
	p.problem = &Reason{CodeUnknownAuthority, fmt.Sprintf(
		"unknown authority: no bundle root within %d certificates of the leaf", maxDepth)}
	return p
}

// pickIssuer returns the first candidate whose key verifies cur's signature.
// When none does, it tells a broken signature (the candidate cur names by
// key identifier, or the only chain certificate when cur names none) from a
// look-alike issuer: same name, other key, as after a CA was re-created.
func pickIssuer(cur *x509.Certificate, role string, cands, bundle []*x509.Certificate) (*x509.Certificate, *Reason) {
	errs := make([]error, len(cands))
	for i, c := range cands {
		errs[i] = c.CheckSignature(cur.SignatureAlgorithm, cur.RawTBSCertificate, cur.Signature)
		if errs[i] == nil {
			return c, nil
		}
	}
	// Bundle roots come first, so the last candidate is from the chain if
	// any is.
	i, named := len(cands)-1, false
	if len(cur.AuthorityKeyId) > 0 {
		for j, c := range cands {
			if bytes.Equal(cur.AuthorityKeyId, c.SubjectKeyId) {
				i, named = j, true
				break
			}
		}
	}
	c := cands[i]
	inBundle := contains(bundle, c)
	if named || (len(cur.AuthorityKeyId) == 0 && !inBundle) {
		return nil, &Reason{CodeSignatureInvalid, fmt.Sprintf(
			"signature invalid: the signature of %s does not verify with the key of its issuer %q (%v)",
			who(cur, role), name(c.Subject.String()), errs[i])}
	}
	where := "certificate in the chain"
	if inBundle {
		where = "bundle root"
	}
	return nil, &Reason{CodeUnknownAuthority, fmt.Sprintf(
		"unknown authority: %s %q has the name of the issuer of %s but another key",
		where, name(c.Subject.String()), who(cur, role))}
}

func unknownAuthority(cur *x509.Certificate, role string, bundle []*x509.Certificate) *Reason {
	var roots []string
	for _, c := range bundle {
		if c != nil {
			roots = append(roots, fmt.Sprintf("%q", name(c.Subject.String())))
		}
	}
	have := "the bundle is empty"
	if len(roots) > 0 {
		have = "bundle roots: " + strings.Join(roots, ", ")
	}
	if selfSigned(cur) {
		return &Reason{CodeUnknownAuthority, fmt.Sprintf(
			"unknown authority: the chain ends at self-signed %q, which is not in the bundle (%s)",
			name(cur.Subject.String()), have)}
	}
	return &Reason{CodeUnknownAuthority, fmt.Sprintf(
		"unknown authority: the chain stops at issuer %q of %s, which is neither in the bundle nor in the chain (%s)",
		name(cur.Issuer.String()), who(cur, role), have)}
}

func contains(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, b := range certs {
		if b != nil && b.Equal(c) {
			return true
		}
	}
	return false
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// who names a certificate in a message: "the leaf" or `intermediate "CN=x"`.
func who(c *x509.Certificate, role string) string {
	if role == "leaf" {
		return "the leaf"
	}
	return fmt.Sprintf("%s %q", role, name(c.Subject.String()))
}

// name renders a distinguished name, or says it is empty.
func name(dn string) string {
	if dn == "" {
		return "(empty name)"
	}
	return dn
}

package diagnose

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/ocspcheck"
	"github.com/certgate/certgate/internal/store"
)

// checkValidity reports c if d.in.At is outside its validity window, with the
// same boundaries as x509 (both ends inclusive).
func (d *diagnosis) checkValidity(c *x509.Certificate, role string) {
	at := d.in.At
	prefix := ""
	if role != "leaf" {
		prefix = who(c, role) + " "
	}
	switch {
	case at.Before(c.NotBefore):
		d.add(Reason{CodeNotYetValid, fmt.Sprintf("%snot yet valid: starts in %s (not before %s)",
			prefix, human(c.NotBefore.Sub(at)), stamp(c.NotBefore))})
	case at.After(c.NotAfter):
		d.add(Reason{CodeExpired, fmt.Sprintf("%sexpired %s ago (not after %s)",
			prefix, human(at.Sub(c.NotAfter)), stamp(c.NotAfter))})
	}
}

// checkCA applies the basic constraints rules: the leaf is no CA, every
// intermediate is one, and no CA has more intermediates below it than its
// path length allows. It also reports unhandled critical extensions.
func (d *diagnosis) checkCA(p path) {
	for i, c := range p.certs {
		role := p.role(i)
		if len(c.UnhandledCriticalExtensions) > 0 {
			oids := make([]string, len(c.UnhandledCriticalExtensions))
			for j, o := range c.UnhandledCriticalExtensions {
				oids[j] = o.String()
			}
			d.add(Reason{CodeCriticalExtension, fmt.Sprintf("%s has unhandled critical extensions: %s",
				who(c, role), strings.Join(oids, ", "))})
		}
		if i == 0 {
			if c.BasicConstraintsValid && c.IsCA {
				d.add(Reason{CodeLeafIsCA, "the leaf is a CA certificate (basic constraints CA:TRUE); a client certificate must not be one"})
			}
			continue
		}
		if role != "root" && (!c.BasicConstraintsValid || !c.IsCA) {
			d.add(Reason{CodeNotCA, fmt.Sprintf("%s is not a CA (no basic constraints CA:TRUE) but issued %s",
				who(c, role), who(p.certs[i-1], p.role(i-1)))})
		}
		if below := i - 1; c.BasicConstraintsValid && c.MaxPathLen >= 0 && below > c.MaxPathLen {
			d.add(Reason{CodePathLength, fmt.Sprintf("%s allows %d intermediate(s) below it (path length %d) but the chain has %d",
				who(c, role), c.MaxPathLen, c.MaxPathLen, below)})
		}
	}
}

// checkEKU reports every certificate of the path whose extended key usages
// exclude client auth. As in x509, a certificate without EKUs allows any.
func (d *diagnosis) checkEKU(p path) {
	for i, c := range p.certs {
		if allowsClientAuth(c) {
			continue
		}
		has := strings.Join(ekuNames(c), ", ")
		if i == 0 {
			d.add(Reason{CodeWrongEKU, fmt.Sprintf("wrong EKU: the leaf is not for client auth (extended key usages: %s)", has)})
			continue
		}
		d.add(Reason{CodeWrongEKU, fmt.Sprintf("wrong EKU: %s limits extended key usages to %s, which excludes client auth",
			who(c, p.role(i)), has)})
	}
}

func allowsClientAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// checkNameConstraints applies the URI name constraints of every CA of the
// path to the URI SANs of every certificate below it, with the matching rules
// of x509: a constraint "example.org" allows the host example.org and its
// subdomains, ".example.org" only subdomains.
func (d *diagnosis) checkNameConstraints(p path) {
	for i := 1; i < len(p.certs); i++ {
		ca := p.certs[i]
		if len(ca.PermittedURIDomains) == 0 && len(ca.ExcludedURIDomains) == 0 {
			continue
		}
		for j := 0; j < i; j++ {
			for _, u := range p.certs[j].URIs {
				if msg := uriOutside(u, ca.PermittedURIDomains, ca.ExcludedURIDomains); msg != "" {
					d.add(Reason{CodeNameConstraint, fmt.Sprintf("outside name constraints: URI %s %s of %s",
						u, msg, who(ca, p.role(i)))})
				}
			}
		}
	}
}

// uriOutside returns why u breaks the constraints, or "".
func uriOutside(u *url.URL, permitted, excluded []string) string {
	host, err := uriHost(u)
	if err != nil {
		return fmt.Sprintf("cannot be matched (%v) against the constraints", err)
	}
	if len(permitted) > 0 {
		ok := false
		for _, c := range permitted {
			if domainMatch(host, c) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Sprintf("is not within the permitted URI domains (%s)", strings.Join(permitted, ", "))
		}
	}
	for _, c := range excluded {
		if domainMatch(host, c) {
			return fmt.Sprintf("is within the excluded URI domain %q", c)
		}
	}
	return ""
}

// uriHost extracts the host a URI constraint applies to, refusing what x509
// refuses: no host, or an IP address.
func uriHost(u *url.URL) (string, error) {
	host := strings.ToLower(u.Host)
	if host == "" {
		return "", errors.New("no host")
	}
	if strings.Contains(host, ":") && !strings.HasSuffix(host, "]") {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			return "", fmt.Errorf("bad host %q: %w", u.Host, err)
		}
		host = h
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		return "", errors.New("host is an IP address")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", errors.New("host is an IP address")
	}
	return host, nil
}

func domainMatch(host, constraint string) bool {
	c := strings.ToLower(constraint)
	if c == "" {
		return true
	}
	if strings.HasPrefix(c, ".") {
		return strings.HasSuffix(host, c)
	}
	return host == c || strings.HasSuffix(host, "."+c)
}

// checkIdentity checks the leaf carries exactly one valid SPIFFE ID, in the
// trust domain if one was given, and records it in the report.
func (d *diagnosis) checkIdentity(leaf *x509.Certificate) {
	switch len(leaf.URIs) {
	case 0:
		d.add(Reason{CodeNoURISAN, "no URI SAN: the leaf carries no SPIFFE ID"})
		return
	case 1:
	default:
		uris := make([]string, len(leaf.URIs))
		for i, u := range leaf.URIs {
			uris[i] = u.String()
		}
		d.add(Reason{CodeManyURISANs, fmt.Sprintf("the leaf has %d URI SANs (%s); a client certificate carries exactly one SPIFFE ID",
			len(uris), strings.Join(uris, ", "))})
		return
	}
	id, err := identity.Parse(leaf.URIs[0].String())
	if err != nil {
		d.add(Reason{CodeInvalidSPIFFEID, "not a valid SPIFFE ID: " + err.Error()})
		return
	}
	d.rep.Identity = id.String()
	if td := d.in.TrustDomain; td != "" && !id.MemberOf(td) {
		d.add(Reason{CodeWrongTrustDomain, fmt.Sprintf("wrong trust domain: %s is not in trust domain %s", id, td)})
	}
}

// checkRevocation asks the store about the leaf. A failed lookup fails the
// report: a revocation check that was asked for and could not be done must
// not read as "not revoked".
func (d *diagnosis) checkRevocation(ctx context.Context, leaf *x509.Certificate) {
	if d.in.Revocations == nil {
		if d.in.Status == nil {
			d.rep.Revocation = "not checked"
			if d.in.Offline {
				d.rep.Revocation = "not checked (--offline)"
			}
		}
		return
	}
	d.rep.Revocation = "checked in the store: not revoked"
	serial := serialHex(leaf)
	rec, err := d.in.Revocations.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		d.rep.Revocation = "the store has no record of this certificate"
		d.warn(Reason{CodeNotInStore, fmt.Sprintf("the store has no certificate with serial %s, so it cannot say whether it is revoked", serial)})
		return
	}
	if err != nil {
		d.rep.Revocation = "the store could not be read"
		d.add(Reason{CodeRevocationFailed, fmt.Sprintf("could not check revocation of serial %s: %v", serial, err)})
		return
	}
	sum := sha256.Sum256(leaf.Raw)
	if fp := hex.EncodeToString(sum[:]); rec.Fingerprint != "" && !strings.EqualFold(rec.Fingerprint, fp) {
		d.warn(Reason{CodeNotInStore, fmt.Sprintf("the store's certificate with serial %s is a different certificate (SHA-256 %s, this one %s)",
			serial, rec.Fingerprint, fp)})
		return
	}
	rv := rec.Revocation
	if rv == nil {
		return
	}
	by := ""
	if rv.RevokedBy != "" {
		by = " by " + rv.RevokedBy
	}
	d.rep.Revocation = "checked in the store: revoked"
	if rv.RevokedAt.After(d.in.At) {
		d.rep.Revocation = "checked in the store: revoked after the time checked"
		d.warn(Reason{CodeRevokedLater, fmt.Sprintf("revoked %s after the time checked (at %s%s, reason %s)",
			human(rv.RevokedAt.Sub(d.in.At)), stamp(rv.RevokedAt), by, reasonName(rv.Reason))})
		return
	}
	d.add(Reason{CodeRevoked, fmt.Sprintf("revoked %s ago (at %s%s, reason %s)",
		human(d.in.At.Sub(rv.RevokedAt)), stamp(rv.RevokedAt), by, reasonName(rv.Reason))})
}

// checkStatus asks the leaf's OCSP responder (or the server's) whether it
// is revoked. An answer that could not be had fails the report, as a
// failed store lookup does: "could not check" must not read as "good".
func (d *diagnosis) checkStatus(ctx context.Context, leaf *x509.Certificate) {
	if d.in.Status == nil || d.in.Revocations != nil {
		return
	}
	serial := serialHex(leaf)
	url, source, err := d.in.Status.Where(leaf)
	if err != nil {
		d.rep.Revocation = "not checked: the certificate names no OCSP responder and no server was given"
		d.add(Reason{CodeRevocationFailed, fmt.Sprintf("could not check revocation of serial %s: the certificate names no OCSP responder; give the server (--server or $CERTGATE_SERVER), or --offline to skip the check", serial)})
		return
	}
	issuer := ocspcheck.IssuerOf(leaf, append(slices.Clone(d.in.Chain[1:]), d.in.Bundle...))
	if issuer == nil {
		d.rep.Revocation = "not checked: the leaf's issuer is not in the chain"
		d.add(Reason{CodeRevocationFailed, fmt.Sprintf("could not check revocation of serial %s: OCSP needs the leaf's issuer, which is not in the chain or the bundle", serial)})
		return
	}
	a, err := d.in.Status.Check(ctx, leaf, issuer)
	if err != nil {
		d.rep.Revocation = fmt.Sprintf("OCSP at %s (%s): no answer", url, source)
		d.add(Reason{CodeRevocationFailed, fmt.Sprintf("could not check revocation of serial %s with OCSP at %s (%s): %v; --offline skips the check", serial, url, source, err)})
		return
	}
	asOf := stamp(a.ThisUpdate)
	switch a.Status {
	case ocspcheck.Good:
		d.rep.Revocation = fmt.Sprintf("OCSP at %s (%s): good, as of %s", url, source, asOf)
	case ocspcheck.Revoked:
		d.rep.Revocation = fmt.Sprintf("OCSP at %s (%s): revoked", url, source)
		if a.RevokedAt.After(d.in.At) {
			d.warn(Reason{CodeRevokedLater, fmt.Sprintf("revoked %s after the time checked (at %s, reason %s; OCSP at %s)",
				human(a.RevokedAt.Sub(d.in.At)), stamp(a.RevokedAt), a.Reason, url)})
			return
		}
		d.add(Reason{CodeRevoked, fmt.Sprintf("revoked %s ago (at %s, reason %s; OCSP at %s)",
			human(d.in.At.Sub(a.RevokedAt)), stamp(a.RevokedAt), a.Reason, url)})
	default:
		d.rep.Revocation = fmt.Sprintf("OCSP at %s (%s): unknown", url, source)
		d.add(Reason{CodeRevocationFailed, fmt.Sprintf("the OCSP responder at %s (%s) does not know serial %s: its CA did not issue this certificate", url, source, serial)})
	}
}

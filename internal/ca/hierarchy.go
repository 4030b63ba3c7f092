package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/store"
)

// URLs are where the CA publishes certificate status and its own
// certificates, under one base URL (server.status_url, else the API URL).
// Each issuer has its own CRL and certificate URL, written into what it
// signs; the OCSP responder is one URL for every issuer (a request names
// its issuer by hashes).
type URLs struct{ Base string }

// CRL is the URL of the CRL of the CA key keyID.
func (u URLs) CRL(keyID string) string { return u.join("/crl/" + keyID) }

// OCSP is the OCSP responder's URL.
func (u URLs) OCSP() string { return u.join("/ocsp") }

// CACert is the URL of the DER certificate of the CA key keyID
// (authority information access, caIssuers).
func (u URLs) CACert(keyID string) string { return u.join("/ca/" + keyID + ".crt") }

func (u URLs) join(p string) string {
	if u.Base == "" {
		return ""
	}
	return strings.TrimSuffix(u.Base, "/") + p
}

// KeySource gives the private key of a CA certificate (package cakey:
// encrypted PEM or a PKCS#11 token).
type KeySource interface {
	Key(ctx context.Context, c store.CACert) (crypto.Signer, error)
}

// Hierarchy is one consistent view of the CA: which intermediate signs,
// what clients trust, and who answers for the status of what. It is
// immutable; a change of the CA state builds a new one
// ([BuildHierarchy]) that the [Service] swaps in.
type Hierarchy struct {
	// Active is the intermediate that signs every new certificate.
	Active *Issuer
	// Chain is sent after a leaf of Active: Active's certificate and, while
	// a root rotation overlaps two roots, the cross-certificate through
	// which clients that trust only the old root verify it.
	Chain []*x509.Certificate
	// Roots is the trust bundle: every root that is next, active or
	// retiring.
	Roots []*x509.Certificate
	// Intermediates are the published CA certificates below the roots
	// (intermediates and cross-certificates that are next, active or
	// retiring), for verifiers of clients that send only their leaf.
	Intermediates []*x509.Certificate
	// Status are the intermediates that answer OCSP and publish a CRL for
	// what they issued (active and retiring), by key ID.
	Status map[string]*Issuer
	// RootIssuers are the roots that publish a CRL of the CA certificates
	// they certified (next, active and retiring), by key ID.
	RootIssuers map[string]*Issuer
	// Revoked are the revoked CA certificates, by key ID.
	Revoked map[string]store.CACert
	// CAs are the rows it was built from.
	CAs []store.CACert
}

// StaticHierarchy is the hierarchy of one intermediate under roots, for a
// CA whose state is not in a store (tests, tools).
// Its CAs are rows made up for those certificates (generation 1, active),
// which the store does not hold.
func StaticHierarchy(iss *Issuer, roots []*x509.Certificate) *Hierarchy {
	h := &Hierarchy{Active: iss, Chain: []*x509.Certificate{iss.cert}, Roots: roots, Intermediates: []*x509.Certificate{iss.cert},
		Status: map[string]*Issuer{iss.KeyID(): iss}, RootIssuers: map[string]*Issuer{}, Revoked: map[string]store.CACert{}}
	row := func(kind string, c *x509.Certificate, issuer string) store.CACert {
		return store.CACert{Fingerprint: Fingerprint(c), Kind: kind, KeyID: KeyID(c), IssuerKeyID: issuer, Generation: 1,
			State: store.CAActive, NotBefore: c.NotBefore, NotAfter: c.NotAfter, DER: c.Raw}
	}
	issuer := hex.EncodeToString(iss.cert.AuthorityKeyId)
	h.CAs = append(h.CAs, row(store.CAKindIntermediate, iss.cert, issuer))
	for _, r := range roots {
		h.CAs = append(h.CAs, row(store.CAKindRoot, r, KeyID(r)))
	}
	return h
}

// HierarchyOptions are what BuildHierarchy needs besides the rows.
type HierarchyOptions struct {
	TrustDomain string
	URLs        URLs
	Keys        KeySource
	Clock       clock.Clock
}

// BuildHierarchy builds the hierarchy of the CA rows cas, loading the keys
// of the intermediates that answer status and of the published roots.
func BuildHierarchy(ctx context.Context, cas []store.CACert, o HierarchyOptions) (*Hierarchy, error) {
	h := &Hierarchy{Status: map[string]*Issuer{}, RootIssuers: map[string]*Issuer{}, Revoked: map[string]store.CACert{}, CAs: cas}
	certs := make(map[string]*x509.Certificate, len(cas))
	var active []store.CACert
	var crosses []store.CACert
	published := func(state string) bool {
		return state == store.CANext || state == store.CAActive || state == store.CARetiring
	}
	for _, c := range cas {
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return nil, fmt.Errorf("ca: CA certificate %s: %w", c.Fingerprint, err)
		}
		certs[c.Fingerprint] = cert
		if c.State == store.CARevoked {
			h.Revoked[c.KeyID] = c
		}
		switch c.Kind {
		case store.CAKindRoot:
			if !published(c.State) {
				continue
			}
			h.Roots = append(h.Roots, cert)
			iss, err := o.issuer(ctx, c, cert)
			if err != nil {
				return nil, err
			}
			h.RootIssuers[c.KeyID] = iss
		case store.CAKindIntermediate:
			if published(c.State) {
				h.Intermediates = append(h.Intermediates, cert)
			}
			switch c.State {
			case store.CAActive:
				active = append(active, c)
				fallthrough
			case store.CARetiring:
				iss, err := o.issuer(ctx, c, cert)
				if err != nil {
					return nil, err
				}
				h.Status[c.KeyID] = iss
			}
		case store.CAKindCross:
			if c.State == store.CANext || c.State == store.CAActive {
				h.Intermediates = append(h.Intermediates, cert)
			}
			if c.State == store.CAActive {
				crosses = append(crosses, c)
			}
		}
	}
	switch len(active) {
	case 0:
		return nil, errors.New("ca: no active intermediate")
	case 1:
	default:
		return nil, fmt.Errorf("ca: %d active intermediates; exactly one signs", len(active))
	}
	if len(h.Roots) == 0 {
		return nil, errors.New("ca: no root in the trust bundle")
	}
	h.Active = h.Status[active[0].KeyID]
	h.Chain = []*x509.Certificate{h.Active.cert}
	// The cross-certificate that certifies the active intermediate's root
	// under another published root goes with the chain, so clients that
	// trust only that other root verify too.
	for _, c := range crosses {
		if c.KeyID == active[0].IssuerKeyID && h.RootIssuers[c.IssuerKeyID] != nil {
			h.Chain = append(h.Chain, certs[c.Fingerprint])
		}
	}
	return h, nil
}

// issuer loads the key of c and makes its Issuer, with the distribution
// points of what it signs.
func (o HierarchyOptions) issuer(ctx context.Context, c store.CACert, cert *x509.Certificate) (*Issuer, error) {
	if o.Keys == nil {
		return nil, errors.New("ca: no key source")
	}
	key, err := o.Keys.Key(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("ca: key of %s %d (%s): %w", c.Kind, c.Generation, c.KeyID, err)
	}
	iss, err := NewIssuer(cert, key, o.TrustDomain, o.Clock)
	if err != nil {
		return nil, fmt.Errorf("ca: %s %d (%s): %w", c.Kind, c.Generation, c.KeyID, err)
	}
	iss.CRLURL, iss.OCSPURL, iss.IssuerURL = o.URLs.CRL(c.KeyID), o.URLs.OCSP(), o.URLs.CACert(c.KeyID)
	return iss, nil
}

// ActiveRow is the row of the active intermediate; ok is false for a
// static hierarchy.
func (h *Hierarchy) ActiveRow() (store.CACert, bool) {
	return h.row(store.CAKindIntermediate, store.CAActive)
}

// ActiveRoot is the row of the active root; ok is false for a static
// hierarchy.
func (h *Hierarchy) ActiveRoot() (store.CACert, bool) {
	return h.row(store.CAKindRoot, store.CAActive)
}

func (h *Hierarchy) row(kind, state string) (store.CACert, bool) {
	for _, c := range h.CAs {
		if c.Kind == kind && c.State == state {
			return c, true
		}
	}
	return store.CACert{}, false
}

// IssuerRevoked reports whether the CA key keyID (a leaf's authority key
// identifier in hex) is revoked.
func (h *Hierarchy) IssuerRevoked(keyID string) bool {
	_, ok := h.Revoked[keyID]
	return ok
}

// CheckCurrent returns an error if the active intermediate or the root it
// chains to is not valid at now: a server must not start with one.
func (h *Hierarchy) CheckCurrent(now time.Time) error {
	check := func(what string, c *x509.Certificate) error {
		switch {
		case now.After(c.NotAfter):
			return fmt.Errorf("ca: the active %s %q expired at %s", what, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(c.NotBefore):
			return fmt.Errorf("ca: the active %s %q is not valid before %s", what, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if err := check("intermediate", h.Active.cert); err != nil {
		return err
	}
	for _, r := range h.Roots {
		if r.CheckSignatureFrom(r) == nil && h.Active.cert.CheckSignatureFrom(r) == nil {
			return check("root", r)
		}
	}
	return nil
}

package certstatus

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/certgate/certgate/internal/store"
)

// CRL is a signed certificate revocation list.
type CRL struct {
	DER        []byte
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int
	// Position is the last event position it reflects.
	Position int64

	refreshAt time.Time
}

// ErrNoIssuer is returned for the CRL of a key that publishes none: not a
// CA key of this CA, or one retired (nothing it issued is valid), revoked,
// or next (it has signed nothing yet).
var ErrNoIssuer = errors.New("certstatus: no CRL for this issuer")

// CRL returns the current CRL of the active intermediate.
func (s *Service) CRL(ctx context.Context) (*CRL, error) {
	return s.CRLFor(ctx, s.o.Authority.Hierarchy().Active.KeyID())
}

// CRLFor returns the current CRL of the CA key keyID (hex subject key
// identifier): an intermediate's lists the certificates it issued that are
// revoked, a root's the CA certificates it certified that are revoked. A
// new one is built when an event arrived since the last one or half its
// validity has passed.
func (s *Service) CRLFor(ctx context.Context, keyID string) (*CRL, error) {
	st, ok := s.state(keyID)
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrNoIssuer, keyID)
	}
	pos, err := s.position(ctx)
	if err != nil {
		return nil, err
	}
	st.crlMu.Lock()
	defer st.crlMu.Unlock()
	now := s.o.Clock.Now()
	if c := st.crl; c != nil && c.Position == pos && now.Before(c.refreshAt) {
		return c, nil
	}
	c, err := s.buildCRL(st, pos, now)
	if err != nil {
		return nil, err
	}
	st.crl = c
	s.o.Log.Debug("built CRL", "issuer", keyID, "number", c.Number, "entries", c.Entries, "position", pos)
	return c, nil
}

// buildCRL signs a CRL of the view at pos. Revocations of certificates that
// expired more than one CRL validity ago are dropped from the view here: by
// then they appeared on at least one CRL issued after their expiry, as
// RFC 5280 section 3.3 asks.
//
// thisUpdate is backdated (OpenSSL refuses a CRL whose thisUpdate is a
// second in its future, so a CRL stamped "now" would fail verifiers whose
// clocks lag), but never to before a revocation it lists: a CRL says what
// was revoked as of thisUpdate (RFC 5280 section 5.1.2.4), so a revocation
// of the last minute moves thisUpdate up to it (at most to now).
func (s *Service) buildCRL(st *issuerState, pos int64, now time.Time) (*CRL, error) {
	var list []x509.RevocationListEntry
	if st.root {
		list = s.caEntries(st.iss.KeyID())
	} else {
		cutoff := now.Add(-s.o.CRLValidity)
		keyID := st.iss.KeyID()
		s.mu.Lock()
		entries := make([]*revoked, 0, len(s.revs))
		for serial, r := range s.revs {
			if r.notAfter.Before(cutoff) {
				delete(s.revs, serial)
				continue
			}
			if r.issuer == keyID {
				entries = append(entries, r)
			}
		}
		s.mu.Unlock()
		list = revocationEntries(entries)
	}
	thisUpdate := now.Add(-backdate)
	for _, e := range list {
		if e.RevocationTime.After(thisUpdate) {
			thisUpdate = e.RevocationTime
		}
	}
	if thisUpdate.After(now) {
		thisUpdate = now
	}
	thisUpdate = thisUpdate.UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		Number:                    crlNumber(pos, thisUpdate),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(s.o.CRLValidity),
		RevokedCertificateEntries: list,
	}
	der, err := st.iss.SignCRL(tmpl)
	if err != nil {
		return nil, fmt.Errorf("certstatus: %w", err)
	}
	next := tmpl.NextUpdate
	if na := st.iss.Certificate().NotAfter; next.After(na) {
		next = na
	}
	return &CRL{
		DER: der, Number: tmpl.Number, ThisUpdate: thisUpdate, NextUpdate: next,
		Entries: len(list), Position: pos,
		refreshAt: thisUpdate.Add(next.Sub(thisUpdate) / 2),
	}, nil
}

// caEntries lists the revoked CA certificates that the root rootKeyID
// certified, by revocation time.
func (s *Service) caEntries(rootKeyID string) []x509.RevocationListEntry {
	var list []x509.RevocationListEntry
	for _, c := range s.o.Authority.Hierarchy().CAs {
		if c.State != store.CARevoked || c.IssuerKeyID != rootKeyID || c.Kind == store.CAKindRoot {
			continue
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			s.o.Log.Error("cannot list a revoked CA certificate on its root's CRL", "fingerprint", c.Fingerprint, "err", err)
			continue
		}
		list = append(list, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: c.RevokedAt.UTC(), ReasonCode: c.Reason})
	}
	slices.SortFunc(list, func(a, b x509.RevocationListEntry) int { return a.RevocationTime.Compare(b.RevocationTime) })
	return list
}

// revocationEntries turns revocations into CRL entries in the order they
// happened (event position), so the same view always encodes the same way.
// Reason code 0 (unspecified) is left out of the entry, as RFC 5280 section
// 5.3.1 asks.
func revocationEntries(rs []*revoked) []x509.RevocationListEntry {
	slices.SortFunc(rs, func(a, b *revoked) int { return cmp.Compare(a.position, b.position) })
	list := make([]x509.RevocationListEntry, len(rs))
	for i, r := range rs {
		list[i] = x509.RevocationListEntry{SerialNumber: r.serial, RevocationTime: r.at.UTC(), ReasonCode: r.reason}
	}
	return list
}

// crlNumber is position × 2³² + thisUpdate in Unix seconds. The position
// alone would repeat when the CRL is re-issued without a new revocation;
// time alone would not order two replicas that saw different revocations.
// This grows with both, and fits RFC 5280's 20 octets for any int64
// position.
func crlNumber(pos int64, thisUpdate time.Time) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(pos), 32)
	return n.Add(n, big.NewInt(thisUpdate.Unix()))
}

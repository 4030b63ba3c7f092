package certstatus

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"time"
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

// CRL returns the current CRL, building a new one when a revocation arrived
// since the last one or half its validity has passed.
func (s *Service) CRL(ctx context.Context) (*CRL, error) {
	pos, err := s.position(ctx)
	if err != nil {
		return nil, err
	}
	s.crlMu.Lock()
	defer s.crlMu.Unlock()
	now := s.o.Clock.Now()
	if c := s.crl; c != nil && c.Position == pos && now.Before(c.refreshAt) {
		return c, nil
	}
	c, err := s.buildCRL(pos, now)
	if err != nil {
		return nil, err
	}
	s.crl = c
	s.o.Log.Debug("built CRL", "number", c.Number, "entries", c.Entries, "position", pos)
	return c, nil
}

// buildCRL signs a CRL of the view at pos. Revocations of certificates that
// expired more than one CRL validity ago are dropped from the view here: by
// then they appeared on at least one CRL issued after their expiry, as
// RFC 5280 section 3.3 asks.
//
// thisUpdate is backdated even when that puts a revocation of the last
// minute after it: OpenSSL refuses a CRL whose thisUpdate is a second in its
// future, so a CRL stamped "now" would fail verifiers whose clocks lag.
func (s *Service) buildCRL(pos int64, now time.Time) (*CRL, error) {
	thisUpdate := now.Add(-backdate).Truncate(time.Second)
	cutoff := now.Add(-s.o.CRLValidity)
	s.mu.Lock()
	entries := make([]*revoked, 0, len(s.revs))
	for serial, r := range s.revs {
		if r.notAfter.Before(cutoff) {
			delete(s.revs, serial)
			continue
		}
		entries = append(entries, r)
	}
	s.mu.Unlock()
	list := revocationEntries(entries)
	tmpl := &x509.RevocationList{
		Number:                    crlNumber(pos, thisUpdate),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(s.o.CRLValidity),
		RevokedCertificateEntries: list,
	}
	der, err := s.o.Authority.Issuer().SignCRL(tmpl)
	if err != nil {
		return nil, fmt.Errorf("certstatus: %w", err)
	}
	next := tmpl.NextUpdate
	if na := s.o.Authority.Issuer().Certificate().NotAfter; next.After(na) {
		next = na
	}
	return &CRL{
		DER: der, Number: tmpl.Number, ThisUpdate: thisUpdate, NextUpdate: next,
		Entries: len(list), Position: pos,
		refreshAt: thisUpdate.Add(next.Sub(thisUpdate) / 2),
	}, nil
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

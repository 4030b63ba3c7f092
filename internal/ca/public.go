package ca

import (
	"crypto/x509"
	"fmt"
	"slices"

	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// PublicState is the CA's public state of the CA rows cas (wire.CA), as
// the API and the change feed publish it. It needs no key, so every
// replica can answer from the store at any event position.
func PublicState(trustDomain string, cas []store.CACert, position int64) (wire.CA, error) {
	out := wire.CA{TrustDomain: trustDomain, RevokedIssuers: []string{}, Position: position}
	var roots, inters []*x509.Certificate
	for _, c := range cas {
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return wire.CA{}, fmt.Errorf("ca: CA certificate %s: %w", c.Fingerprint, err)
		}
		published := c.State == store.CANext || c.State == store.CAActive || c.State == store.CARetiring
		switch {
		case c.State == store.CARevoked && c.Kind != store.CAKindCross:
			if !slices.Contains(out.RevokedIssuers, c.KeyID) {
				out.RevokedIssuers = append(out.RevokedIssuers, c.KeyID)
			}
		case c.Kind == store.CAKindRoot && published:
			roots = append(roots, cert)
		case c.Kind == store.CAKindIntermediate && published, c.Kind == store.CAKindCross && (c.State == store.CANext || c.State == store.CAActive):
			inters = append(inters, cert)
		}
		if c.Kind == store.CAKindIntermediate && c.State == store.CAActive {
			out.Active = c.KeyID
		}
	}
	out.Roots = string(pemutil.EncodeCertificates(roots...))
	out.Intermediates = string(pemutil.EncodeCertificates(inters...))
	return out, nil
}

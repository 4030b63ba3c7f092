package certstatus

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// SignerPath is the SPIFFE path of the delegated OCSP signer's identity.
const SignerPath = "/server/ocsp-signer"

// signer is what signs OCSP responses for one issuer, and the SHA-1 of its
// public key that names it in responses (ResponderID byKey, RFC 6960
// section 4.2.1). Either a delegated responder (cert and key: a short-lived
// P-256 key of this process, certified by the issuer), or, when the
// issuer's key is in a device (a PKCS#11 token), the issuer itself (cert
// nil, byIssuer set): no private key that signs status then exists outside
// the device, and the response carries no certificate, since its verifier
// already holds the issuer's.
type signer struct {
	cert     *x509.Certificate
	key      crypto.Signer
	byIssuer *ca.Issuer
	keyHash  []byte
	notAfter time.Time // responses never claim to be current past it
}

// currentSigner returns the issuer's OCSP signer, issuing a new one when
// there is none or two thirds of its life have passed. If renewal fails
// while the current one is still valid, it keeps answering with it.
func (s *Service) currentSigner(ctx context.Context, is *issuerState) (*signer, error) {
	is.signerMu.Lock()
	defer is.signerMu.Unlock()
	now := s.o.Clock.Now()
	cur := is.signer
	if !is.iss.KeyInSoftware() {
		if cur == nil {
			cur = &signer{byIssuer: is.iss, keyHash: is.hash[crypto.SHA1][1], notAfter: is.iss.Certificate().NotAfter}
			is.signer = cur
		}
		return cur, nil
	}
	if cur != nil {
		life := cur.cert.NotAfter.Sub(cur.cert.NotBefore)
		if now.Before(cur.cert.NotBefore.Add(life * 2 / 3)) {
			return cur, nil
		}
	}
	next, err := s.issueSigner(ctx, is.iss)
	if err != nil {
		// Keep the old one while responses signed now still end before it
		// does; the next request tries again.
		if cur != nil && now.Add(s.o.OCSPValidity).Before(cur.cert.NotAfter) {
			s.o.Log.Error("renewing the OCSP signer failed; keeping the current one", "err", err)
			return cur, nil
		}
		return nil, err
	}
	is.signer = next
	// Responses signed by the old signer stay valid, but new ones come from
	// the new signer from now on.
	s.cache.forgetIssuer(is.iss.KeyID())
	return next, nil
}

func (s *Service) issueSigner(ctx context.Context, by *ca.Issuer) (*signer, error) {
	// P-256 always: responses are signed with ecdsa-with-SHA256, which every
	// OCSP client supports, whatever the CA's own key type.
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("certstatus: signer key: %w", err)
	}
	id, err := identity.New(s.o.Authority.TrustDomain(), SignerPath)
	if err != nil {
		return nil, fmt.Errorf("certstatus: %w", err)
	}
	p := ca.OCSPSigningProfile
	p.Lifetime = s.o.SignerLifetime
	iss, err := s.o.Authority.IssueDirectBy(ctx, by, ca.Request{PublicKey: key.Public(), Identity: id}, p, store.ObtainedServer, id.String())
	if err != nil {
		return nil, fmt.Errorf("certstatus: OCSP signer: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(iss.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("certstatus: OCSP signer public key: %w", err)
	}
	// SHA-1 here is RFC 6960's KeyHash, an identifier, not a signature.
	sum := sha1.Sum(spki.PublicKey.RightAlign())
	s.o.Log.Info("issued OCSP signer certificate", "issuer", by.KeyID(), "serial", iss.Record.Serial, "not_after", iss.Cert.NotAfter)
	return &signer{cert: iss.Cert, key: key, keyHash: sum[:], notAfter: iss.Cert.NotAfter}, nil
}

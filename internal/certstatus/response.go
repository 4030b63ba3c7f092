package certstatus

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/store"
)

// Response is a signed OCSP response.
type Response struct {
	DER        []byte
	Status     int    // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	Serial     string // lowercase hex, as the store keeps it
	ThisUpdate time.Time
	NextUpdate time.Time
	// Nonce reports that the response echoes the request's nonce: it
	// answers that one request and must not be cached.
	Nonce bool
	// Cached reports that it came from the cache, unsigned this time.
	Cached bool
}

// Respond answers the DER OCSP request der. Errors wrap [ErrMalformed] or
// [ErrUnauthorized] for requests to refuse with that OCSP status; other
// errors are the store's (store.ErrUnavailable: try later) or internal.
func (s *Service) Respond(ctx context.Context, der []byte) (Response, error) {
	req, err := ParseRequest(der)
	if err != nil {
		return Response{}, err
	}
	is, err := s.issuerOf(req)
	if err != nil {
		return Response{}, err
	}
	pos, err := s.position(ctx)
	if err != nil {
		return Response{}, err
	}
	serial := ""
	if req.Serial.Sign() > 0 {
		serial = ca.SerialHex(req.Serial)
	}
	key := cacheKey{is.iss.KeyID(), serial, req.HashAlgorithm}
	if req.Nonce == nil {
		if c, ok := s.cache.get(key, s.o.Clock.Now()); ok && !s.revokedSince(c) {
			c.resp.Cached = true
			return c.resp, nil
		}
	}
	st, err := s.status(ctx, is.iss.KeyID(), serial)
	if err != nil {
		return Response{}, err
	}
	sg, err := s.currentSigner(ctx, is)
	if err != nil {
		return Response{}, err
	}
	resp, err := s.sign(is, sg, req, st, s.o.Clock.Now())
	if err != nil {
		return Response{}, err
	}
	resp.Serial = serial
	// Unknown is not cached: nothing invalidates it when the serial is
	// issued, and random serials must not fill the cache.
	if req.Nonce == nil && st.status != ocsp.Unknown {
		s.cache.put(key, cached{resp: resp, pos: pos, refreshAt: resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)})
	}
	return resp, nil
}

// HTTPMaxAge is how long an HTTP cache may keep something valid until next:
// the time left, capped at Settings.MaxAge.
func (s *Service) HTTPMaxAge(next time.Time) time.Duration {
	return max(min(next.Sub(s.o.Clock.Now()), s.o.MaxAge), 0)
}

// revokedSince reports whether a cached "good" became stale: its serial was
// revoked after the position its status was read at. (A revocation also
// drops the entry; this covers a response signed while the revocation
// committed.)
func (s *Service) revokedSince(c cached) bool {
	if c.resp.Status != ocsp.Good {
		return false
	}
	r, ok := s.revocation(c.resp.Serial)
	return ok && r.position > c.pos
}

type certStatus struct {
	status    int
	revokedAt time.Time
	reason    int
}

// issuerOf returns the issuer the request names, if it answers status; a
// request about another CA's certificates, or about one of ours that
// answers no more (retired, revoked, not active yet), is unauthorized.
func (s *Service) issuerOf(req Request) (*issuerState, error) {
	states, err := s.states()
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if !st.root && st.hash.matches(req) && !s.expired(st) {
			return st, nil
		}
	}
	return nil, fmt.Errorf("%w: issuer name hash %x and key hash %x (%s) name no intermediate of this CA that answers for its certificates",
		ErrUnauthorized, req.IssuerNameHash, req.IssuerKeyHash, req.HashAlgorithm)
}

// status looks serial up under the issuer keyID: revoked if the view or the
// store says so, good if the store knows it as a certificate of that
// issuer, unknown otherwise ("" is no serial we could issue; a serial of
// another of our issuers is unknown to this one).
func (s *Service) status(ctx context.Context, keyID, serial string) (certStatus, error) {
	if serial == "" {
		return certStatus{status: ocsp.Unknown}, nil
	}
	if r, ok := s.revocation(serial); ok && r.issuer == keyID {
		return certStatus{status: ocsp.Revoked, revokedAt: r.at, reason: r.reason}, nil
	}
	rec, err := s.o.Store.GetCertificate(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return certStatus{status: ocsp.Unknown}, nil
	case err != nil:
		return certStatus{}, fmt.Errorf("certstatus: look up %s: %w", serial, err)
	case rec.Issuer != keyID:
		return certStatus{status: ocsp.Unknown}, nil
	case rec.Revocation != nil:
		return certStatus{status: ocsp.Revoked, revokedAt: rec.Revocation.RevokedAt, reason: rec.Revocation.Reason}, nil
	}
	return certStatus{status: ocsp.Good}, nil
}

// The ASN.1 of an OCSP response, RFC 6960 section 4.2.1. It is written here
// rather than with golang.org/x/crypto/ocsp.CreateResponse, which puts
// extensions into the single response (the nonce belongs in
// responseExtensions) and stamps producedAt from the wall clock.
type responseASN1 struct {
	Status asn1.Enumerated
	Bytes  responseBytesASN1 `asn1:"explicit,tag:0,optional"`
}

type responseBytesASN1 struct {
	Type     asn1.ObjectIdentifier
	Response []byte
}

type basicResponseASN1 struct {
	TBS                asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certs              []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type responseDataASN1 struct {
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []singleResponseASN1
	Extensions  []pkix.Extension `asn1:"explicit,tag:1,optional"`
}

type singleResponseASN1 struct {
	CertID     certIDASN1
	Status     asn1.RawValue
	ThisUpdate time.Time `asn1:"generalized"`
	NextUpdate time.Time `asn1:"generalized,explicit,tag:0"`
}

type revokedInfoASN1 struct {
	Time   time.Time       `asn1:"generalized"`
	Reason asn1.Enumerated `asn1:"explicit,tag:0,optional"` // 0 (unspecified) is left out
}

var (
	oidOCSPBasic       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
)

// sign builds and signs the response for req with status st at now.
func (s *Service) sign(is *issuerState, sg *signer, req Request, st certStatus, now time.Time) (Response, error) {
	thisUpdate := now.Add(-backdate).UTC().Truncate(time.Second)
	if at := st.revokedAt.UTC().Truncate(time.Second); st.status == ocsp.Revoked && at.After(thisUpdate) {
		// thisUpdate is when the status was known correct (RFC 6960 section
		// 4.2.2.1): never before the revocation it reports. OCSP clients
		// allow minutes of skew on it, unlike CRL verifiers (see crl.go).
		thisUpdate = at
	}
	nextUpdate := thisUpdate.Add(s.o.OCSPValidity)
	if nextUpdate.After(sg.notAfter) {
		nextUpdate = sg.notAfter.UTC()
	}
	var status asn1.RawValue
	switch st.status {
	case ocsp.Good:
		status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0}
	case ocsp.Unknown:
		status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2}
	case ocsp.Revoked:
		seq, err := asn1.Marshal(revokedInfoASN1{Time: st.revokedAt.UTC().Truncate(time.Second), Reason: asn1.Enumerated(st.reason)})
		if err != nil {
			return Response{}, fmt.Errorf("certstatus: encode revocation: %w", err)
		}
		var inner asn1.RawValue
		if _, err := asn1.Unmarshal(seq, &inner); err != nil {
			return Response{}, fmt.Errorf("certstatus: encode revocation: %w", err)
		}
		// RevokedInfo is [1] IMPLICIT: the SEQUENCE's contents under tag 1.
		status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: inner.Bytes}
	default:
		return Response{}, fmt.Errorf("certstatus: unknown status %d", st.status)
	}
	keyHash, err := asn1.Marshal(sg.keyHash)
	if err != nil {
		return Response{}, fmt.Errorf("certstatus: encode responder: %w", err)
	}
	var hashOID asn1.ObjectIdentifier
	for _, h := range hashOIDs {
		if h.hash == req.HashAlgorithm {
			hashOID = h.oid
		}
	}
	hashes := is.hash[req.HashAlgorithm]
	data := responseDataASN1{
		// byKey [2] EXPLICIT KeyHash
		ResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: keyHash},
		ProducedAt:  now.UTC().Truncate(time.Second),
		Responses: []singleResponseASN1{{
			CertID: certIDASN1{
				HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: hashOID, Parameters: asn1.NullRawValue},
				IssuerNameHash: hashes[0],
				IssuerKeyHash:  hashes[1],
				SerialNumber:   req.Serial,
			},
			Status:     status,
			ThisUpdate: thisUpdate,
			NextUpdate: nextUpdate,
		}},
	}
	if req.Nonce != nil {
		data.Extensions = []pkix.Extension{{Id: oidNonce, Value: req.Nonce}}
	}
	tbs, err := asn1.Marshal(data)
	if err != nil {
		return Response{}, fmt.Errorf("certstatus: encode response: %w", err)
	}
	var (
		sig   []byte
		alg   pkix.AlgorithmIdentifier
		certs []asn1.RawValue
	)
	if sg.byIssuer != nil {
		if sig, alg, err = sg.byIssuer.SignOCSP(tbs); err != nil {
			return Response{}, fmt.Errorf("certstatus: sign response: %w", err)
		}
	} else {
		digest := sha256.Sum256(tbs)
		if sig, err = sg.key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			return Response{}, fmt.Errorf("certstatus: sign response: %w", err)
		}
		alg, certs = pkix.AlgorithmIdentifier{Algorithm: oidECDSAWithSHA256}, []asn1.RawValue{{FullBytes: sg.cert.Raw}}
	}
	basic, err := asn1.Marshal(basicResponseASN1{
		TBS:                asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: alg,
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
		Certs:              certs,
	})
	if err != nil {
		return Response{}, fmt.Errorf("certstatus: encode response: %w", err)
	}
	der, err := asn1.Marshal(responseASN1{Status: asn1.Enumerated(ocsp.Success), Bytes: responseBytesASN1{Type: oidOCSPBasic, Response: basic}})
	if err != nil {
		return Response{}, fmt.Errorf("certstatus: encode response: %w", err)
	}
	return Response{DER: der, Status: st.status, ThisUpdate: thisUpdate, NextUpdate: nextUpdate, Nonce: req.Nonce != nil}, nil
}

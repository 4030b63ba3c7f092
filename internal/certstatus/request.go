package certstatus

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // OCSP CertIDs are mostly SHA-1; an identifier, not a signature
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// Errors of [ParseRequest] and [Service.Respond] that map to OCSP error
// responses.
var (
	// ErrMalformed: the request is not a well-formed OCSP request this
	// responder can answer (malformedRequest).
	ErrMalformed = errors.New("certstatus: malformed OCSP request")
	// ErrUnauthorized: the request is about a certificate of another issuer
	// (unauthorized).
	ErrUnauthorized = errors.New("certstatus: not authorized for this issuer")
)

// Request is a parsed OCSP request about one certificate.
type Request struct {
	HashAlgorithm  crypto.Hash // of the issuer name and key hashes
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
	// Nonce is the extnValue of the nonce extension (the DER OCTET STRING
	// holding the nonce), echoed verbatim in the response; nil if absent.
	Nonce []byte
}

// The ASN.1 of RFC 6960 section 4.1.1, read loosely enough to see every
// field and then checked by hand.
type ocspRequestASN1 struct {
	TBSRequest        tbsRequestASN1
	OptionalSignature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

type tbsRequestASN1 struct {
	Version           int           `asn1:"explicit,tag:0,default:0,optional"`
	RequestorName     asn1.RawValue `asn1:"explicit,tag:1,optional"`
	RequestList       []singleRequestASN1
	RequestExtensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

type singleRequestASN1 struct {
	ReqCert                 certIDASN1
	SingleRequestExtensions []pkix.Extension `asn1:"explicit,tag:0,optional"`
}

type certIDASN1 struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   *big.Int
}

var (
	oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	// The CertID hash algorithms accepted, as in golang.org/x/crypto/ocsp.
	hashOIDs = []struct {
		hash crypto.Hash
		oid  asn1.ObjectIdentifier
	}{
		{crypto.SHA1, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}},
		{crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
		{crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}},
		{crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}},
	}
)

// maxNonce is RFC 8954's limit: a responder must refuse a nonce longer than
// 32 octets (or empty) with malformedRequest.
const maxNonce = 32

// ParseRequest parses a DER OCSP request about exactly one certificate.
// Unlike golang.org/x/crypto/ocsp.ParseRequest it reads the request
// extensions (the nonce; an unknown critical extension is refused, as
// RFC 6960 section 4.4 asks) and refuses requests listing several
// certificates instead of silently answering the first. A request signature
// is accepted and not checked: this responder answers anyone. Every error
// wraps [ErrMalformed].
func ParseRequest(der []byte) (Request, error) {
	bad := func(format string, a ...any) (Request, error) {
		return Request{}, fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	if len(der) == 0 {
		return bad("empty request")
	}
	var raw ocspRequestASN1
	rest, err := asn1.Unmarshal(der, &raw)
	var syntax asn1.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return bad("not DER: %s", syntax.Msg)
	case err != nil:
		// encoding/asn1's structural errors name Go types and field tags:
		// say what it means instead.
		return bad("not an OCSP request: unexpected ASN.1 structure")
	}
	if len(rest) > 0 {
		return bad("%d bytes of trailing data", len(rest))
	}
	tbs := raw.TBSRequest
	if tbs.Version != 0 {
		return bad("version v%d is not v1", tbs.Version+1)
	}
	switch n := len(tbs.RequestList); {
	case n == 0:
		return bad("no certificate asked about")
	case n > 1:
		return bad("%d certificates asked about; this responder answers one per request", n)
	}
	one := tbs.RequestList[0]
	req := Request{
		IssuerNameHash: one.ReqCert.IssuerNameHash,
		IssuerKeyHash:  one.ReqCert.IssuerKeyHash,
		Serial:         one.ReqCert.SerialNumber,
	}
	for _, h := range hashOIDs {
		if one.ReqCert.HashAlgorithm.Algorithm.Equal(h.oid) {
			req.HashAlgorithm = h.hash
		}
	}
	if req.HashAlgorithm == 0 {
		return bad("hash algorithm %s is not supported", one.ReqCert.HashAlgorithm.Algorithm)
	}
	if n := req.HashAlgorithm.Size(); len(req.IssuerNameHash) != n || len(req.IssuerKeyHash) != n {
		return bad("issuer hashes of %d and %d bytes do not fit %s", len(req.IssuerNameHash), len(req.IssuerKeyHash), req.HashAlgorithm)
	}
	for _, ext := range one.SingleRequestExtensions {
		if ext.Critical {
			return bad("unsupported critical extension %s", ext.Id)
		}
	}
	for _, ext := range tbs.RequestExtensions {
		switch {
		case ext.Id.Equal(oidNonce):
			if req.Nonce != nil {
				return bad("more than one nonce")
			}
			var nonce []byte
			rest, err := asn1.Unmarshal(ext.Value, &nonce)
			if err != nil || len(rest) > 0 {
				return bad("nonce is not an OCTET STRING")
			}
			if len(nonce) < 1 || len(nonce) > maxNonce {
				return bad("nonce of %d bytes (want 1 to %d)", len(nonce), maxNonce)
			}
			req.Nonce = bytes.Clone(ext.Value)
		case ext.Critical:
			return bad("unsupported critical extension %s", ext.Id)
		}
	}
	return req, nil
}

// issuerHashes are the intermediate's name and key hashes per CertID hash
// algorithm, computed once.
type issuerHashes map[crypto.Hash][2][]byte

func newIssuerHashes(issuer *x509.Certificate) (issuerHashes, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("certstatus: issuer public key: %w", err)
	}
	out := make(issuerHashes, len(hashOIDs))
	for _, h := range hashOIDs {
		nh := h.hash.New()
		nh.Write(issuer.RawSubject)
		kh := h.hash.New()
		kh.Write(spki.PublicKey.RightAlign())
		out[h.hash] = [2][]byte{nh.Sum(nil), kh.Sum(nil)}
	}
	return out, nil
}

// check returns ErrUnauthorized unless req names our intermediate.
func (h issuerHashes) check(req Request) error {
	want := h[req.HashAlgorithm]
	if !bytes.Equal(req.IssuerNameHash, want[0]) || !bytes.Equal(req.IssuerKeyHash, want[1]) {
		return fmt.Errorf("%w: issuer name hash %x and key hash %x (%s) are not this CA's intermediate",
			ErrUnauthorized, req.IssuerNameHash, req.IssuerKeyHash, req.HashAlgorithm)
	}
	return nil
}

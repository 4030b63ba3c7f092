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

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
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

// certIDASN1 is RFC 6960's CertID, as written in responses.
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
// certificates instead of silently answering the first. A requestor name
// and a request signature are accepted and not checked: this responder
// answers anyone. It reads strict DER with cryptobyte, without reflection:
// this is the hot path of every OCSP request, cached or not. Every error
// wraps [ErrMalformed].
func ParseRequest(der []byte) (Request, error) {
	bad := func(format string, a ...any) (Request, error) {
		return Request{}, fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	cannot := func(what string) (Request, error) { return bad("cannot read the %s", what) }
	if len(der) == 0 {
		return bad("empty request")
	}
	input := cryptobyte.String(der)
	var outer, tbs cryptobyte.String
	if !input.ReadASN1(&outer, casn1.SEQUENCE) {
		return bad("not a DER-encoded OCSPRequest")
	}
	if !input.Empty() {
		return bad("%d bytes of trailing data", len(input))
	}
	if !outer.ReadASN1(&tbs, casn1.SEQUENCE) {
		return cannot("tbsRequest")
	}
	if !outer.SkipOptionalASN1(explicit(0)) || !outer.Empty() {
		return cannot("optionalSignature")
	}
	var version int64
	if !tbs.ReadOptionalASN1Integer(&version, explicit(0), int64(0)) {
		return cannot("version")
	}
	if version != 0 {
		return bad("version %d is not v1 (0)", version)
	}
	var list, exts cryptobyte.String
	var hasExts bool
	if !tbs.SkipOptionalASN1(explicit(1)) {
		return cannot("requestorName")
	}
	if !tbs.ReadASN1(&list, casn1.SEQUENCE) {
		return cannot("requestList")
	}
	if !tbs.ReadOptionalASN1(&exts, &hasExts, explicit(2)) || !tbs.Empty() {
		return cannot("requestExtensions")
	}
	var one cryptobyte.String
	n := 0
	for rest := list; !rest.Empty(); n++ {
		var r cryptobyte.String
		if !rest.ReadASN1(&r, casn1.SEQUENCE) {
			return cannot("requestList")
		}
		one = r
	}
	switch {
	case n == 0:
		return bad("no certificate asked about")
	case n > 1:
		return bad("%d certificates asked about; this responder answers one per request", n)
	}
	var certID, algID, singleExts cryptobyte.String
	var hasSingleExts bool
	if !one.ReadASN1(&certID, casn1.SEQUENCE) {
		return cannot("reqCert")
	}
	if !one.ReadOptionalASN1(&singleExts, &hasSingleExts, explicit(0)) || !one.Empty() {
		return cannot("singleRequestExtensions")
	}
	var oid asn1.ObjectIdentifier
	if !certID.ReadASN1(&algID, casn1.SEQUENCE) || !algID.ReadASN1ObjectIdentifier(&oid) {
		return cannot("hashAlgorithm")
	}
	// Parameters are absent or NULL.
	if !algID.Empty() && (!algID.SkipASN1(casn1.NULL) || !algID.Empty()) {
		return cannot("hashAlgorithm")
	}
	var req Request
	req.Serial = new(big.Int)
	if !certID.ReadASN1Bytes(&req.IssuerNameHash, casn1.OCTET_STRING) {
		return cannot("issuerNameHash")
	}
	if !certID.ReadASN1Bytes(&req.IssuerKeyHash, casn1.OCTET_STRING) {
		return cannot("issuerKeyHash")
	}
	if !certID.ReadASN1Integer(req.Serial) || !certID.Empty() {
		return cannot("serialNumber")
	}
	for _, h := range hashOIDs {
		if oid.Equal(h.oid) {
			req.HashAlgorithm = h.hash
		}
	}
	if req.HashAlgorithm == 0 {
		return bad("hash algorithm %s is not supported", oid)
	}
	if n := req.HashAlgorithm.Size(); len(req.IssuerNameHash) != n || len(req.IssuerKeyHash) != n {
		return bad("issuer hashes of %d and %d bytes do not fit %s", len(req.IssuerNameHash), len(req.IssuerKeyHash), req.HashAlgorithm)
	}
	if hasSingleExts {
		err := readExtensions(singleExts, func(id asn1.ObjectIdentifier, critical bool, _ []byte) error {
			if critical {
				return fmt.Errorf("unsupported critical extension %s", id)
			}
			return nil
		})
		if err != nil {
			return bad("%v", err)
		}
	}
	if hasExts {
		err := readExtensions(exts, func(id asn1.ObjectIdentifier, critical bool, value []byte) error {
			switch {
			case id.Equal(oidNonce):
				if req.Nonce != nil {
					return errors.New("more than one nonce")
				}
				v := cryptobyte.String(value)
				var nonce []byte
				if !v.ReadASN1Bytes(&nonce, casn1.OCTET_STRING) || !v.Empty() {
					return errors.New("nonce is not an OCTET STRING")
				}
				if len(nonce) < 1 || len(nonce) > maxNonce {
					return fmt.Errorf("nonce of %d bytes (want 1 to %d)", len(nonce), maxNonce)
				}
				req.Nonce = bytes.Clone(value)
			case critical:
				return fmt.Errorf("unsupported critical extension %s", id)
			}
			return nil
		})
		if err != nil {
			return bad("%v", err)
		}
	}
	req.IssuerNameHash = bytes.Clone(req.IssuerNameHash)
	req.IssuerKeyHash = bytes.Clone(req.IssuerKeyHash)
	return req, nil
}

// explicit is the tag of an [n] EXPLICIT field.
func explicit(n uint8) casn1.Tag { return casn1.Tag(n).Constructed().ContextSpecific() }

// readExtensions calls f for each Extension of the explicitly tagged
// SEQUENCE OF Extension in s (RFC 5280 section 4.1).
func readExtensions(s cryptobyte.String, f func(id asn1.ObjectIdentifier, critical bool, value []byte) error) error {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, casn1.SEQUENCE) || !s.Empty() {
		return errors.New("cannot read the extensions")
	}
	for !seq.Empty() {
		var ext cryptobyte.String
		var id asn1.ObjectIdentifier
		var critical bool
		var value []byte
		if !seq.ReadASN1(&ext, casn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&id) ||
			ext.PeekASN1Tag(casn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) ||
			!ext.ReadASN1Bytes(&value, casn1.OCTET_STRING) || !ext.Empty() {
			return errors.New("cannot read an extension")
		}
		if err := f(id, critical, value); err != nil {
			return err
		}
	}
	return nil
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

// matches reports whether req names this issuer.
func (h issuerHashes) matches(req Request) bool {
	want := h[req.HashAlgorithm]
	return bytes.Equal(req.IssuerNameHash, want[0]) && bytes.Equal(req.IssuerKeyHash, want[1])
}

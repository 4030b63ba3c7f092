package certstatus

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// FuzzParseRequest feeds arbitrary bytes to ParseRequest and, through
// Respond, to the whole OCSP path. It checks that ParseRequest only fails
// with ErrMalformed, that what it accepts is consistent (hash sizes, nonce
// bounds), that golang.org/x/crypto/ocsp reads the same CertID whenever both
// accept, and that x/crypto refuses only what it does not support (signed
// requests, a requestor name).
func FuzzParseRequest(f *testing.F) {
	fx := newFixture(f, Settings{})
	ctx := context.Background()
	inter := fx.inter
	good, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(0x1234)}, inter, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(opensslRequest)
	f.Add(good)
	f.Add(request(f, inter, big.NewInt(99), crypto.SHA1, []byte("0123456789abcdef")))
	f.Add(request(f, inter, big.NewInt(-1), crypto.SHA512, nil))
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte("POST /ocsp HTTP/1.1"))

	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ParseRequest(der)
		theirs, theirErr := ocsp.ParseRequest(der)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		} else {
			if req.Serial == nil || len(req.IssuerNameHash) != req.HashAlgorithm.Size() || len(req.IssuerKeyHash) != req.HashAlgorithm.Size() {
				t.Fatalf("accepted inconsistent request %+v", req)
			}
			if req.Nonce != nil {
				var n []byte
				if rest, err := asn1.Unmarshal(req.Nonce, &n); err != nil || len(rest) > 0 || len(n) < 1 || len(n) > maxNonce {
					t.Fatalf("accepted nonce %x", req.Nonce)
				}
			}
			switch {
			case theirErr == nil:
				if req.HashAlgorithm != theirs.HashAlgorithm || req.Serial.Cmp(theirs.SerialNumber) != 0 ||
					!bytes.Equal(req.IssuerNameHash, theirs.IssuerNameHash) || !bytes.Equal(req.IssuerKeyHash, theirs.IssuerKeyHash) {
					t.Fatalf("ours %+v, x/crypto %+v", req, theirs)
				}
			case !signedOrNamed(der):
				t.Fatalf("accepted what x/crypto refuses (%v): %+v", theirErr, req)
			}
		}
		// The responder answers or refuses with an OCSP error, never more.
		resp, err := fx.svc.Respond(ctx, der)
		switch {
		case err == nil:
			if _, perr := ocsp.ParseResponse(resp.DER, inter); perr != nil {
				t.Fatalf("response does not parse: %v", perr)
			}
		case !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnauthorized):
			t.Fatalf("Respond: %v", err)
		}
	})
}

func signedOrNamed(der []byte) bool {
	var raw ocspRequestASN1
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return false
	}
	return len(raw.OptionalSignature.FullBytes) > 0 || len(raw.TBSRequest.RequestorName.FullBytes) > 0
}

package certstatus

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// encodeRequest builds a request from parts, for malformed variants.
func encodeRequest(t *testing.T, mod func(*ocspRequestASN1)) []byte {
	t.Helper()
	h := bytes.Repeat([]byte{0xaa}, 20)
	req := ocspRequestASN1{TBSRequest: tbsRequestASN1{RequestList: []singleRequestASN1{{ReqCert: certIDASN1{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: hashOIDs[0].oid, Parameters: asn1.NullRawValue},
		IssuerNameHash: h, IssuerKeyHash: h, SerialNumber: big.NewInt(0x1234),
	}}}}}
	if mod != nil {
		mod(&req)
	}
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func nonceExt(t *testing.T, n []byte) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidNonce, Value: v}
}

func TestParseRequestAccepts(t *testing.T) {
	der := encodeRequest(t, func(r *ocspRequestASN1) {
		r.TBSRequest.RequestExtensions = []pkix.Extension{
			{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}, // unknown, not critical: ignored
			nonceExt(t, []byte("sixteen byte nce")),
		}
		r.TBSRequest.RequestList[0].SingleRequestExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 4}, Value: []byte{5, 0}}}
		// A named, signed request is answered like any other: neither is checked.
		// requestorName [1] EXPLICIT GeneralName: dNSName [2] IA5String.
		name, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte("client.example.org")})
		r.TBSRequest.RequestorName = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: name}
		r.OptionalSignature = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{0x30, 0x00}}
	})
	req, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	wantNonce, _ := asn1.Marshal([]byte("sixteen byte nce"))
	if req.HashAlgorithm != crypto.SHA1 || req.Serial.Int64() != 0x1234 || !bytes.Equal(req.Nonce, wantNonce) ||
		!bytes.Equal(req.IssuerNameHash, bytes.Repeat([]byte{0xaa}, 20)) {
		t.Fatalf("parsed %+v", req)
	}
	// The same request as golang.org/x/crypto/ocsp builds it.
	plain := encodeRequest(t, nil)
	theirs, err := ocsp.ParseRequest(plain)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := ParseRequest(plain)
	if err != nil {
		t.Fatal(err)
	}
	if ours.Serial.Cmp(theirs.SerialNumber) != 0 || ours.HashAlgorithm != theirs.HashAlgorithm || ours.Nonce != nil {
		t.Fatalf("ours %+v, theirs %+v", ours, theirs)
	}
}

// rawRequest encodes a request whose serialNumber is serialDER as is, and
// whose hash algorithm claims SHA-1 with 2-byte hashes.
func rawRequest(serialDER []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPRequest
		b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // tbsRequest
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // requestList
				b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // Request
					b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
						b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(hashOIDs[0].oid)
							b.AddASN1NULL()
						})
						b.AddASN1OctetString([]byte{1, 2})
						b.AddASN1OctetString([]byte{3, 4})
						b.AddBytes(serialDER)
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

func TestParseRequestRefuses(t *testing.T) {
	valid := encodeRequest(t, nil)
	two := func(r *ocspRequestASN1) {
		r.TBSRequest.RequestList = append(r.TBSRequest.RequestList, r.TBSRequest.RequestList[0])
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want string
	}{
		{"empty", nil, "empty request"},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), "not a DER-encoded OCSPRequest"},
		{"truncated", valid[:len(valid)-3], "not a DER-encoded OCSPRequest"},
		{"a certificate list", []byte{0x30, 0x03, 0x02, 0x01, 0x01}, "cannot read the tbsRequest"},
		{"trailing data", append(bytes.Clone(valid), 0x00, 0x00), "2 bytes of trailing data"},
		{"version 2", encodeRequest(t, func(r *ocspRequestASN1) { r.TBSRequest.Version = 1 }), "version 1 is not v1 (0)"},
		{"no certificate", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestList = []singleRequestASN1{}
			r.TBSRequest.RequestExtensions = []pkix.Extension{nonceExt(t, []byte{1})}
		}), "no certificate asked about"},
		{"two certificates", encodeRequest(t, two), "2 certificates asked about; this responder answers one per request"},
		{"MD5", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestList[0].ReqCert.HashAlgorithm.Algorithm = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
		}), "hash algorithm 1.2.840.113549.2.5 is not supported"},
		{"hash parameters not NULL", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestList[0].ReqCert.HashAlgorithm.Parameters = asn1.RawValue{Tag: asn1.TagInteger, Bytes: []byte{1}}
		}), "cannot read the hashAlgorithm"},
		{"minimal serial, short hashes", rawRequest([]byte{0x02, 0x02, 0x12, 0x34}), "issuer hashes of 2 and 2 bytes do not fit SHA-1"},
		{"non-minimal serial", rawRequest([]byte{0x02, 0x03, 0x00, 0x12, 0x34}), "cannot read the serialNumber"},
		{"serial not an INTEGER", rawRequest([]byte{0x04, 0x02, 0x12, 0x34}), "cannot read the serialNumber"},
		{"short hash", encodeRequest(t, func(r *ocspRequestASN1) { r.TBSRequest.RequestList[0].ReqCert.IssuerKeyHash = []byte{1, 2, 3} }),
			"issuer hashes of 20 and 3 bytes do not fit SHA-1"},
		{"empty nonce", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestExtensions = []pkix.Extension{nonceExt(t, []byte{})}
		}), "nonce of 0 bytes (want 1 to 32)"},
		{"long nonce", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestExtensions = []pkix.Extension{nonceExt(t, make([]byte, 33))}
		}), "nonce of 33 bytes (want 1 to 32)"},
		{"raw nonce", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestExtensions = []pkix.Extension{{Id: oidNonce, Value: []byte("0123456789abcdef")}}
		}), "nonce is not an OCTET STRING"},
		{"two nonces", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestExtensions = []pkix.Extension{nonceExt(t, []byte{1}), nonceExt(t, []byte{2})}
		}), "more than one nonce"},
		{"critical request extension", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 4}, Critical: true, Value: []byte{0x30, 0}}}
		}), "unsupported critical extension 1.3.6.1.5.5.7.48.1.4"},
		{"critical single extension", encodeRequest(t, func(r *ocspRequestASN1) {
			r.TBSRequest.RequestList[0].SingleRequestExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: []byte{5, 0}}}
		}), "unsupported critical extension 1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRequest(tc.der)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			if want := "certstatus: malformed OCSP request: " + tc.want; err.Error() != want {
				t.Fatalf("error\n%q, want\n%q", err, want)
			}
		})
	}
}

// An OCSP request from OpenSSL 3 (openssl ocsp -issuer ... -serial 0x1234
// -reqout), with its 16-byte nonce, parses.
func TestParseRequestOpenSSL(t *testing.T) {
	req, err := ParseRequest(opensslRequest)
	if err != nil {
		t.Fatal(err)
	}
	if req.Serial.Int64() != 0x1234 || req.HashAlgorithm != crypto.SHA1 || len(req.Nonce) != 18 {
		t.Fatalf("parsed %+v", req)
	}
	if !strings.HasPrefix(string(req.Nonce), "\x04\x10") {
		t.Fatalf("nonce %x is not a 16-byte OCTET STRING", req.Nonce)
	}
}

// opensslRequest was made by OpenSSL 3.0 with
// "openssl ocsp -issuer ca.pem -serial 0x1234 -reqout req.der".
var opensslRequest = mustHex("30683066303f303d303b300906052b0e03021a05000414380b7c96c5c8b81ebf9f37c6cfb8eac6b5201b490414ed8e833fa12f18b8e583c0a7fee417edae042ad002021234a2233021301f06092b060105050730010204120410f164a65ddd8a3d54f190d9260806b13e")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

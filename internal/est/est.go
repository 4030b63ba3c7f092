package est

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"

	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/pemutil"
)

// The paths under /.well-known/est/ (RFC 7030 §3.2.2).
const (
	PathPrefix     = "/.well-known/est/"
	CACerts        = "cacerts"
	SimpleEnroll   = "simpleenroll"
	SimpleReenroll = "simplereenroll"
	CSRAttrs       = "csrattrs"
)

// Media types (RFC 7030 §3.2.4, RFC 8551 for smime-type).
const (
	MediaPKCS10    = "application/pkcs10"
	MediaCertsOnly = "application/pkcs7-mime; smime-type=certs-only"
	MediaCSRAttrs  = "application/csrattrs"
	// TransferEncoding is the Content-Transfer-Encoding of every body.
	TransferEncoding = "base64"
)

// ErrMalformed is a request body that is not a base64 DER PKCS#10 request.
var ErrMalformed = errors.New("est: malformed request")

// ErrTooLarge is a request body larger than MaxBody.
var ErrTooLarge = errors.New("est: request too large")

// MaxBody bounds an enrollment body: base64 of a DER request no larger
// than the largest PEM request certgate accepts (csr.MaxSize), with line
// breaks.
const MaxBody = csr.MaxSize

// DecodeCSR reads an enrollment body: base64 (RFC 4648, line breaks and
// spaces allowed, as MIME writes it) of a DER PKCS#10 request. It returns
// the request's PEM, for the CA's one CSR checker (csr.ParseAndCheck), and
// the parsed request (its signature is not checked here).
func DecodeCSR(body []byte) (pemCSR []byte, req *x509.CertificateRequest, err error) {
	if len(body) > MaxBody {
		return nil, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(body), MaxBody)
	}
	compact := bytes.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', ' ', '\t':
			return -1
		}
		return r
	}, body)
	if len(compact) == 0 {
		return nil, nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	der := make([]byte, base64.StdEncoding.DecodedLen(len(compact)))
	n, err := base64.StdEncoding.Decode(der, compact)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: body is not base64: %w", ErrMalformed, err)
	}
	der = der[:n]
	req, err = x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not a PKCS#10 request: %w", ErrMalformed, err)
	}
	return pemutil.EncodeCSR(der), req, nil
}

// CertsOnly is certs as a degenerate PKCS#7 SignedData (no signers, RFC
// 7030 §4.1.3 and §4.2.3), base64 with MIME line breaks.
func CertsOnly(certs ...*x509.Certificate) ([]byte, error) {
	var all []byte
	for _, c := range certs {
		all = append(all, c.Raw...)
	}
	der, err := pkcs7.DegenerateCertificate(all)
	if err != nil {
		return nil, fmt.Errorf("est: pkcs7: %w", err)
	}
	return Base64(der), nil
}

// ParseCertsOnly is the reverse of CertsOnly, for tests and clients.
func ParseCertsOnly(body []byte) ([]*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
	if err != nil {
		return nil, fmt.Errorf("est: not base64: %w", err)
	}
	p, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("est: pkcs7: %w", err)
	}
	return p.Certificates, nil
}

// Base64 encodes b with a line break every 64 characters (RFC 2045 allows
// 76; 64 is what OpenSSL writes and reads).
func Base64(b []byte) []byte {
	s := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(s) > 64 {
		out.WriteString(s[:64])
		out.WriteString("\n")
		s = s[64:]
	}
	out.WriteString(s)
	out.WriteString("\n")
	return out.Bytes()
}

// The object identifiers /csrattrs names.
var (
	oidECDSAWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECPublicKey      = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256             = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
)

// attribute is an Attribute of CsrAttrs (RFC 7030 §4.5.2).
type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.ObjectIdentifier `asn1:"set"`
}

// CSRAttributes is the body of /csrattrs: what a request should carry. An
// ECDSA P-256 key signed with SHA-256 (the default key type; the others
// certgate accepts are accepted too) and an extension request, in which
// the subject alternative name must name the client's SPIFFE ID.
func CSRAttributes() []byte {
	der, err := asn1.Marshal([]any{
		oidECDSAWithSHA256,
		attribute{Type: oidECPublicKey, Values: []asn1.ObjectIdentifier{oidP256}},
		oidExtensionRequest,
	})
	if err != nil {
		panic(err) // constant input
	}
	return Base64(der)
}

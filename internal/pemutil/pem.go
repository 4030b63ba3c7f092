package pemutil

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxSize bounds every input this package parses. A certificate chain of a
// few certificates, a CSR or a private key (even RSA-4096, about 3.3 KB) fits
// many times over; anything larger is refused before it is decoded so a
// hostile input cannot cost more than that to reject.
const MaxSize = 64 << 10

// PEM block types.
const (
	TypeCertificate         = "CERTIFICATE"
	TypeCertificateRequest  = "CERTIFICATE REQUEST"
	TypeNewCertificateReq   = "NEW CERTIFICATE REQUEST" // written by old tools (Netscape, some Windows); read only
	TypePrivateKey          = "PRIVATE KEY"
	TypeEncryptedPrivateKey = "ENCRYPTED PRIVATE KEY"
	TypeECPrivateKey        = "EC PRIVATE KEY"  // SEC 1, read only
	TypeRSAPrivateKey       = "RSA PRIVATE KEY" // PKCS#1, read only
)

// ErrTooLarge is returned for input larger than MaxSize.
var ErrTooLarge = errors.New("pemutil: input too large")

var (
	errNoPEM     = errors.New("pemutil: no PEM data found")
	errMalformed = errors.New("pemutil: malformed PEM block")
	errBefore    = errors.New("pemutil: unexpected data before PEM block")
	errAfter     = errors.New("pemutil: unexpected data after PEM block")
)

const whitespace = " \t\r\n"

// decode splits data into PEM blocks and refuses anything else in it.
func decode(data []byte) ([]*pem.Block, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), MaxSize)
	}
	var blocks []*pem.Block
	rest := data
	for {
		rest = bytes.TrimLeft(rest, whitespace)
		if len(rest) == 0 {
			break
		}
		block, after := pem.Decode(rest)
		if block == nil {
			switch {
			case bytes.HasPrefix(rest, []byte("-----BEGIN ")):
				return nil, errMalformed
			case len(blocks) > 0:
				return nil, errAfter
			case bytes.Contains(rest, []byte("-----BEGIN ")):
				return nil, errMalformed
			}
			return nil, errNoPEM
		}
		// pem.Decode skips whatever precedes the first well-formed block,
		// including broken blocks; refuse both.
		consumed := rest[:len(rest)-len(after)]
		if !bytes.HasPrefix(consumed, []byte("-----BEGIN ")) {
			if len(blocks) > 0 {
				return nil, errAfter
			}
			return nil, errBefore
		}
		if bytes.Count(consumed, []byte("-----BEGIN ")) != 1 {
			return nil, errMalformed
		}
		if len(block.Headers) > 0 {
			if _, ok := block.Headers["Proc-Type"]; ok {
				return nil, fmt.Errorf("pemutil: PEM block %q is encrypted the legacy way (Proc-Type header), which is not supported; convert it with openssl pkcs8 -topk8", block.Type)
			}
			return nil, fmt.Errorf("pemutil: PEM block %q has headers", block.Type)
		}
		blocks = append(blocks, block)
		rest = after
	}
	if len(blocks) == 0 {
		return nil, errNoPEM
	}
	return blocks, nil
}

// decodeOne decodes data that must hold exactly one block of one of types.
func decodeOne(data []byte, types ...string) (*pem.Block, error) {
	blocks, err := decode(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("pemutil: want one %s block, found %d blocks", types[0], len(blocks))
	}
	if err := checkType(blocks[0], types...); err != nil {
		return nil, err
	}
	return blocks[0], nil
}

func checkType(b *pem.Block, types ...string) error {
	for _, t := range types {
		if b.Type == t {
			return nil
		}
	}
	return fmt.Errorf("pemutil: unexpected PEM block %q (want %s)", b.Type, types[0])
}

// EncodeCertificates returns certs as consecutive CERTIFICATE blocks, in
// order (a chain is leaf first).
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// pem.Encode only fails on invalid headers or a failing writer;
		// neither can happen here.
		_ = pem.Encode(&buf, &pem.Block{Type: TypeCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// ParseCertificates parses one or more CERTIFICATE blocks, in order.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decode(data)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if err := checkType(b, TypeCertificate); err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pemutil: certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// EncodeCSR returns a DER certificate request as a CERTIFICATE REQUEST block.
func EncodeCSR(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: TypeCertificateRequest, Bytes: der})
}

// ParseCSR parses exactly one CERTIFICATE REQUEST (or NEW CERTIFICATE
// REQUEST) block. It does not check the request's signature.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	b, err := decodeOne(data, TypeCertificateRequest, TypeNewCertificateReq)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pemutil: certificate request: %w", err)
	}
	return csr, nil
}

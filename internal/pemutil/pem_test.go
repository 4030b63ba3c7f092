package pemutil

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestCertificatesRoundTrip(t *testing.T) {
	a, b := selfSigned(t, "leaf"), selfSigned(t, "intermediate")
	data := EncodeCertificates(a, b)
	if n := bytes.Count(data, []byte("-----BEGIN CERTIFICATE-----\n")); n != 2 {
		t.Fatalf("encoded %d blocks, want 2:\n%s", n, data)
	}
	// Whitespace around and between blocks is fine, as are CRLF line ends.
	for _, in := range [][]byte{
		data,
		append(append([]byte("\n \t\r\n"), data...), "\n\n  \n"...),
		bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")),
	} {
		got, err := ParseCertificates(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !got[0].Equal(a) || !got[1].Equal(b) {
			t.Fatalf("round trip changed the certificates")
		}
	}
	if got := EncodeCertificates(); len(got) != 0 {
		t.Errorf("EncodeCertificates() = %q, want empty", got)
	}
}

func TestParseCertificatesRefuses(t *testing.T) {
	cert := EncodeCertificates(selfSigned(t, "leaf"))
	key, err := EncodePrivateKey(testKey(t, "ecdsa-p256"))
	if err != nil {
		t.Fatal(err)
	}
	withHeader := []byte("-----BEGIN CERTIFICATE-----\nComment: hi\n\n" + string(cert[28:]))
	big := append(bytes.Repeat([]byte("\n"), MaxSize+1-len(cert)), cert...)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "pemutil: no PEM data found"},
		{"whitespace", []byte(" \n\t\r\n"), "pemutil: no PEM data found"},
		{"garbage", []byte("this is not PEM"), "pemutil: no PEM data found"},
		{"binary", []byte{0x30, 0x82, 0x01, 0x00, 0xff}, "pemutil: no PEM data found"},
		{"trailing garbage", append(append([]byte{}, cert...), "garbage\n"...), "pemutil: unexpected data after PEM block"},
		{"garbage between blocks", append(append(append([]byte{}, cert...), "x\n"...), cert...), "pemutil: unexpected data after PEM block"},
		{"leading garbage", append([]byte("Bag Attributes\n"), cert...), "pemutil: unexpected data before PEM block"},
		{"private key", key, `pemutil: unexpected PEM block "PRIVATE KEY" (want CERTIFICATE)`},
		{"certificate then key", append(append([]byte{}, cert...), key...), `pemutil: unexpected PEM block "PRIVATE KEY" (want CERTIFICATE)`},
		{"headers", withHeader, `pemutil: PEM block "CERTIFICATE" has headers`},
		{"bad base64", []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"), "pemutil: malformed PEM block"},
		{"mismatched end", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END KEY-----\n"), "pemutil: malformed PEM block"},
		{"no end", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n"), "pemutil: malformed PEM block"},
		{"broken then good block", append([]byte("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"), cert...), "pemutil: malformed PEM block"},
		{"garbage then broken block", []byte("hello\n-----BEGIN CERTIFICATE-----\n!!\n"), "pemutil: malformed PEM block"},
		{"not DER", pemBlock("CERTIFICATE", []byte("hello")), "pemutil: certificate 1: x509: malformed certificate"},
		{"second not DER", append(append([]byte{}, cert...), pemBlock("CERTIFICATE", []byte{0x30, 0x00})...), "pemutil: certificate 2: x509: malformed tbs certificate"},
		{"too large", big, "pemutil: input too large: 65537 bytes (limit 65536)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCertificates(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got != nil {
				t.Errorf("returned %d certificates with an error", len(got))
			}
		})
	}
}

func TestParseCertificatesSizeLimit(t *testing.T) {
	cert := EncodeCertificates(selfSigned(t, "leaf"))
	exact := append(bytes.Repeat([]byte("\n"), MaxSize-len(cert)), cert...)
	if _, err := ParseCertificates(exact); err != nil {
		t.Fatalf("input of exactly MaxSize refused: %v", err)
	}
	_, err := ParseCertificates(append(exact, '\n'))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestCSRRoundTrip(t *testing.T) {
	der := csrDER(t)
	data := EncodeCSR(der)
	if !strings.HasPrefix(string(data), "-----BEGIN CERTIFICATE REQUEST-----\n") {
		t.Fatalf("EncodeCSR = %q", data)
	}
	for _, in := range [][]byte{data, pemBlock("NEW CERTIFICATE REQUEST", der)} {
		csr, err := ParseCSR(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(csr.Raw, der) || csr.Subject.CommonName != "billing" {
			t.Fatalf("round trip changed the request")
		}
	}
}

func TestParseCSRRefuses(t *testing.T) {
	csr := EncodeCSR(csrDER(t))
	cert := EncodeCertificates(selfSigned(t, "leaf"))
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "pemutil: no PEM data found"},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), "pemutil: no PEM data found"},
		{"two requests", append(append([]byte{}, csr...), csr...), "pemutil: want one CERTIFICATE REQUEST block, found 2 blocks"},
		{"certificate", cert, `pemutil: unexpected PEM block "CERTIFICATE" (want CERTIFICATE REQUEST)`},
		{"trailing garbage", append(append([]byte{}, csr...), "}"...), "pemutil: unexpected data after PEM block"},
		{"not DER", pemBlock("CERTIFICATE REQUEST", []byte("hello")), "pemutil: certificate request: asn1: structure error: tags don't match (16 vs {class:1 tag:8 length:101 isCompound:true}) {optional:false explicit:false application:false private:false defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} certificateRequest @2"},
		{"too large", bytes.Repeat([]byte("A"), 1<<20), "pemutil: input too large: 1048576 bytes (limit 65536)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCSR(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got != nil {
				t.Error("returned a request with an error")
			}
		})
	}
}

// TestParseCertificatesIsStrictWherePEMIsLenient documents the difference
// from encoding/pem, which skips text around blocks.
func TestParseCertificatesIsStrictWherePEMIsLenient(t *testing.T) {
	cert := EncodeCertificates(selfSigned(t, "leaf"))
	in := append([]byte("subject=CN=leaf\n"), cert...)
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(in) {
		t.Fatal("the standard library refused the input; the test no longer shows the difference")
	}
	if _, err := ParseCertificates(in); err == nil {
		t.Fatal("ParseCertificates accepted text before the block")
	}
}

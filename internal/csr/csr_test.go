package csr

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
)

var billing = identity.MustParse("spiffe://example.org/svc/billing")

var (
	keysMu sync.Mutex
	keys   = map[keytype.Type]crypto.Signer{}
)

// testKey returns a key of type kt, generated once per test binary.
func testKey(t testing.TB, kt keytype.Type) crypto.Signer {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[kt]; ok {
		return k
	}
	k, err := keytype.Generate(kt)
	if err != nil {
		t.Fatal(err)
	}
	keys[kt] = k
	return k
}

// makeCSR signs tmpl with key and returns it as PEM.
func makeCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pemutil.EncodeCSR(der)
}

func uris(t testing.TB, ss ...string) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// sanExtension builds a subjectAltName extension from raw GeneralNames.
func sanExtension(t testing.TB, names ...asn1.RawValue) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: v}
}

func uriName(s string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(s)}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAndCheckEveryKeyType(t *testing.T) {
	for _, kt := range keytype.All {
		t.Run(string(kt), func(t *testing.T) {
			key := testKey(t, kt)
			pemBytes, err := Create(key, billing)
			if err != nil {
				t.Fatal(err)
			}
			req, err := ParseAndCheck(pemBytes, billing)
			if err != nil {
				t.Fatal(err)
			}
			if req.Identity != billing || req.KeyType != kt || req.CSR == nil {
				t.Fatalf("Request = %+v", req)
			}
			if !req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("Request.PublicKey is not the signer's key")
			}
		})
	}
}

func TestCreate(t *testing.T) {
	pemBytes, err := Create(testKey(t, keytype.ECDSAP256), billing)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.String() != "CN=billing" {
		t.Errorf("subject = %q, want CN=billing", c.Subject)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != billing.String() {
		t.Errorf("URIs = %v", c.URIs)
	}
	if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 {
		t.Error("extra SANs in a created request")
	}

	if _, err := Create(testKey(t, keytype.ECDSAP256), identity.ID{}); err == nil || err.Error() != "csr: no identity" {
		t.Errorf("zero identity: err = %v", err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(p521, billing)
	if want := "csr: unsupported key type: ECDSA curve P-521"; err == nil || err.Error() != want {
		t.Errorf("P-521: err = %v, want %q", err, want)
	}
}

// TestSubjectIsIgnored: the CA sets the CN, so whatever the client puts
// there (even something that looks like another identity) is not checked.
func TestSubjectIsIgnored(t *testing.T) {
	pemBytes := makeCSR(t, testKey(t, keytype.ECDSAP256), &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "spiffe://example.org/admin/root", Organization: []string{"Evil"}},
		URIs:    uris(t, billing.String()),
	})
	if _, err := ParseAndCheck(pemBytes, billing); err != nil {
		t.Fatal(err)
	}
}

func TestParseAndCheckRefuses(t *testing.T) {
	p256 := testKey(t, keytype.ECDSAP256)
	good, err := Create(p256, billing)
	if err != nil {
		t.Fatal(err)
	}
	// Flip the last byte of the signature (the end of the DER).
	c, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	der := bytes.Clone(c.Raw)
	der[len(der)-1] ^= 0xff
	brokenSig := pemutil.EncodeCSR(der)

	other, err := Create(p256, identity.MustParse("spiffe://example.org/svc/payroll"))
	if err != nil {
		t.Fatal(err)
	}
	otherTD, err := Create(p256, identity.MustParse("spiffe://evil.example/svc/billing"))
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := func(mod func(*x509.CertificateRequest)) *x509.CertificateRequest {
		r := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "billing"}, URIs: uris(t, billing.String())}
		mod(r)
		return r
	}
	big := bytes.Repeat([]byte("A"), 1<<20)

	for _, tc := range []struct {
		name string
		in   []byte
		want string
		is   error
	}{
		{"broken signature", brokenSig, "csr: signature does not verify: x509: ECDSA verification failure", ErrSignature},
		{"another identity", other, "csr: asks for identity spiffe://example.org/svc/payroll but may only have spiffe://example.org/svc/billing", ErrIdentity},
		{"another trust domain", otherTD, "csr: identity spiffe://evil.example/svc/billing is outside trust domain example.org", ErrIdentity},
		{"RSA-1024", readFile(t, "testdata/rsa-1024.csr.pem"), "csr: key type not allowed: RSA 1024 bits (want 2048, 3072 or 4096)", ErrKeyType},
		{"P-224", readFile(t, "testdata/p-224.csr.pem"), "csr: key type not allowed: ECDSA curve P-224", ErrKeyType},
		{"P-521", makeCSR(t, p521, tmpl(func(*x509.CertificateRequest) {})), "csr: key type not allowed: ECDSA curve P-521", ErrKeyType},
		{"DSA", readFile(t, "testdata/dsa-2048.csr.pem"), "csr: signature does not verify: x509: cannot verify signature: algorithm unimplemented", ErrSignature},
		{"RSA-512", readFile(t, "testdata/rsa-512.csr.pem"), "csr: signature does not verify: crypto/rsa: 512-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)", ErrSignature},
		{"no URI SAN", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) { r.URIs = nil })), "csr: request has no URI SAN (want exactly one: spiffe://example.org/svc/billing)", ErrIdentity},
		{"two URI SANs", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) {
			r.URIs = uris(t, billing.String(), "spiffe://example.org/svc/payroll")
		})), "csr: request has 2 URI SANs (want exactly one: spiffe://example.org/svc/billing)", ErrIdentity},
		{"URI SAN not SPIFFE", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) { r.URIs = uris(t, "https://example.org/svc/billing") })),
			`csr: URI SAN is not a SPIFFE ID: invalid SPIFFE ID "https://example.org/svc/billing": must start with spiffe://`, ErrIdentity},
		{"extra DNS SAN", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) { r.DNSNames = []string{"api.example.org"} })),
			"csr: request has DNS SANs [api.example.org] (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"extra IP SAN", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)} })),
			"csr: request has IP SANs [127.0.0.1] (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"extra email SAN", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"ops@example.org"} })),
			"csr: request has email SANs [ops@example.org] (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"extra otherName SAN (openssl)", readFile(t, "testdata/othername-san.csr.pem"),
			"csr: request has a otherName SAN (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"extra registeredID SAN", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) {
			r.URIs = nil
			r.ExtraExtensions = []pkix.Extension{sanExtension(t, uriName(billing.String()),
				asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03}})}
		})), "csr: request has a registeredID SAN (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"issuerAltName", makeCSR(t, p256, tmpl(func(r *x509.CertificateRequest) {
			v, _ := asn1.Marshal([]asn1.RawValue{uriName("spiffe://example.org/admin/root")})
			r.ExtraExtensions = []pkix.Extension{{Id: oidIssuerAltName, Value: v}}
		})), "csr: request has an issuerAltName extension (only the SPIFFE ID is allowed)", ErrExtraSAN},
		{"1 MB of PEM", pemutil.EncodeCSR(big), "csr: request too large: 1420020 bytes (limit 16384)", ErrTooLarge},
		{"1 MB of garbage", big, "csr: request too large: 1048576 bytes (limit 16384)", ErrTooLarge},
		{"non-PEM garbage", []byte("\x00\x01hello, world"), "csr: malformed request: pemutil: no PEM data found", ErrMalformed},
		{"empty", nil, "csr: malformed request: pemutil: no PEM data found", ErrMalformed},
		{"certificate instead of CSR", selfSignedPEM(t, p256), `csr: malformed request: pemutil: unexpected PEM block "CERTIFICATE" (want CERTIFICATE REQUEST)`, ErrMalformed},
		{"two requests", append(bytes.Clone(good), good...), "csr: malformed request: pemutil: want one CERTIFICATE REQUEST block, found 2 blocks", ErrMalformed},
		{"trailing garbage", append(bytes.Clone(good), "x"...), "csr: malformed request: pemutil: unexpected data after PEM block", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseAndCheck(tc.in, billing)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant   %s", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(err, %v) = false", tc.is)
			}
			if req.CSR != nil {
				t.Errorf("returned a request with an error: %+v", req)
			}
		})
	}
}

func selfSignedPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: uris(t, billing.String())}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pemutil.EncodeCertificates(c)
}

func TestCheckKeepsCause(t *testing.T) {
	c, err := Parse(makeCSR(t, testKey(t, keytype.ECDSAP256), &x509.CertificateRequest{URIs: uris(t, "spiffe://Example.org/x")}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Check(c, billing)
	if !errors.Is(err, ErrIdentity) || !errors.Is(err, identity.ErrInvalid) {
		t.Fatalf("err = %v, want ErrIdentity wrapping identity.ErrInvalid", err)
	}
	c, err = Parse(readFile(t, "testdata/rsa-1024.csr.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err = Check(c, billing); !errors.Is(err, ErrKeyType) || !errors.Is(err, keytype.ErrUnsupported) {
		t.Fatalf("err = %v, want ErrKeyType wrapping keytype.ErrUnsupported", err)
	}
}

func TestCheckRefusesMisuse(t *testing.T) {
	if _, err := Check(nil, billing); err == nil || err.Error() != "csr: malformed request: no request" {
		t.Errorf("nil request: err = %v", err)
	}
	good, err := Create(testKey(t, keytype.ECDSAP256), billing)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseAndCheck(good, identity.ID{})
	if err == nil || err.Error() != "csr: no identity to check the request against" || !errors.Is(err, ErrIdentity) {
		t.Errorf("zero identity: err = %v", err)
	}
}

func TestParseSizeLimit(t *testing.T) {
	good, err := Create(testKey(t, keytype.ECDSAP256), billing)
	if err != nil {
		t.Fatal(err)
	}
	exact := append(bytes.Repeat([]byte("\n"), MaxSize-len(good)), good...)
	if _, err := ParseAndCheck(exact, billing); err != nil {
		t.Fatalf("request of exactly MaxSize refused: %v", err)
	}
	if _, err := Parse(append(exact, '\n')); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestLargestAcceptedRequestFits backs the MaxSize comment: the largest
// request certgate accepts (RSA-4096, the longest SPIFFE ID) fits twice.
func TestLargestAcceptedRequestFits(t *testing.T) {
	long := "spiffe://example.org"
	for len(long)+64 <= 2048 {
		long += "/" + strings.Repeat("a", 63)
	}
	pemBytes, err := Create(testKey(t, keytype.RSA4096), identity.MustParse(long))
	if err != nil {
		t.Fatal(err)
	}
	if len(pemBytes) > MaxSize/2 {
		t.Fatalf("RSA-4096 request is %d bytes", len(pemBytes))
	}
	t.Logf("largest request: %d bytes", len(pemBytes))
}

func TestAllowHostnames(t *testing.T) {
	key, _ := keytype.Generate(keytype.ECDSAP256)
	gw := identity.MustParse("spiffe://example.org/gateway/edge")
	p, err := CreateWithHosts(key, gw, []string{"gw.example.org", "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAndCheck(p, gw); err == nil || err.Error() != "csr: request has DNS SANs [gw.example.org localhost] (only the SPIFFE ID is allowed)" {
		t.Fatalf("without AllowHostnames: %v", err)
	}
	req, err := ParseAndCheck(p, gw, AllowHostnames())
	if err != nil || len(req.DNSNames) != 2 || len(req.IPAddresses) != 1 {
		t.Fatalf("with AllowHostnames: %+v %v", req, err)
	}
	for name, tc := range map[string]struct {
		dns  []string
		want string
	}{
		"wildcard":    {[]string{"*.example.org"}, `csr: DNS SAN "*.example.org": invalid character '*' (no wildcards)`},
		"empty label": {[]string{"a..b"}, `csr: DNS SAN "a..b": empty label or label longer than 63 bytes`},
		"too many": {func() []string {
			var d []string
			for i := range MaxHostnames + 1 {
				d = append(d, fmt.Sprintf("h%d.example.org", i))
			}
			return d
		}(), "csr: request has 33 DNS and IP SANs (limit 32)"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := CreateWithHosts(key, gw, tc.dns, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseAndCheck(p, gw, AllowHostnames()); err == nil || err.Error() != tc.want || !errors.Is(err, ErrExtraSAN) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

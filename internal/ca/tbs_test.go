package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
)

var caKeyTypes = []keytype.Type{keytype.ECDSAP256, keytype.ECDSAP384, keytype.Ed25519, keytype.RSA2048}

// TestCreateCertificateDifferential: for every CA key type, every profile
// and subject key type, with and without status URLs, Issue's certificate
// has the TBSCertificate x509.CreateCertificate makes of the same template,
// byte for byte (the whole certificate with Ed25519, whose signatures are
// deterministic), parses, verifies against the chain, and zlint finds in
// it what it finds in CreateCertificate's.
func TestCreateCertificateDifferential(t *testing.T) {
	leafKeys := map[keytype.Type]crypto.Signer{}
	for _, kt := range caKeyTypes {
		leafKeys[kt], _ = keytype.Generate(kt)
	}
	for _, caKT := range caKeyTypes {
		c := newTestCA(t, caKT)
		for _, urls := range []bool{false, true} {
			if urls {
				c.issuer.CRLURL, c.issuer.OCSPURL, c.issuer.IssuerURL = "http://ca.example.org/crl/ab", "http://ca.example.org/ocsp", "http://ca.example.org/ca/ab.crt"
			}
			for _, leafKT := range caKeyTypes {
				for _, tc := range []struct {
					p     Profile
					hosts bool
				}{{ClientProfile, false}, {ServerProfile, true}, {GatewayProfile, true}, {GatewayProfile, false}, {OCSPSigningProfile, false}} {
					name := fmt.Sprintf("%s/urls=%v/%s/%s/hosts=%v", caKT, urls, leafKT, tc.p.Name, tc.hosts)
					r := Request{PublicKey: leafKeys[leafKT].Public(), Identity: identity.MustParse("spiffe://example.org/ns/prod/sa/" + strings.Repeat("x", 100))}
					if tc.hosts {
						r.DNSNames = []string{"localhost", "gw.example.org"}
						r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("::1"), net.ParseIP("fd00::1")}
					}
					p, err := c.issuer.Prepare(r, tc.p)
					if err != nil {
						t.Fatal(err)
					}
					tmpl := p.tmpl
					want, err := x509.CreateCertificate(rand.Reader, tmpl, c.inter, p.pub, c.issuer.key)
					if err != nil {
						t.Fatal(err)
					}
					wantCert, err := x509.ParseCertificate(want)
					if err != nil {
						t.Fatal(err)
					}
					sa, _ := signingAlgorithm(c.issuer.key.Public())
					if tbs, ok := marshalTBS(tmpl, c.inter, p.pub, sa.der, nil); !ok || !bytes.Equal(tbs, wantCert.RawTBSCertificate) {
						t.Fatalf("%s: TBS (encoded %v)\n%x\nwant\n%x", name, ok, tbs, wantCert.RawTBSCertificate)
					}
					got, err := c.issuer.Issue(p)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got.RawTBSCertificate, wantCert.RawTBSCertificate) {
						t.Fatalf("%s: issued TBS differs", name)
					}
					if caKT == keytype.Ed25519 && !bytes.Equal(got.Raw, want) {
						t.Fatalf("%s: Ed25519 certificate differs", name)
					}
					parsed, err := x509.ParseCertificate(got.Raw)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					roots, inters := x509.NewCertPool(), x509.NewCertPool()
					roots.AddCert(c.root)
					inters.AddCert(c.inter)
					if _, err := parsed.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: c.clock.Now(), KeyUsages: tmpl.ExtKeyUsage}); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if caKT != keytype.Ed25519 && leafKT == keytype.ECDSAP256 { // zcrypto parses no Ed25519
						if g, w := lintFindings(t, got.Raw), lintFindings(t, want); !slices.Equal(g, w) {
							t.Fatalf("%s: zlint finds %v, and %v in CreateCertificate's", name, g, w)
						}
					}
				}
			}
		}
	}
}

// rawTBS is the TBSCertificate of der, which the parser may refuse.
func rawTBS(t *testing.T, der []byte) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var cert, tbs cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		t.Fatalf("no TBSCertificate in %x", der)
	}
	return tbs
}

func lintFindings(t *testing.T, der []byte) []string {
	t.Helper()
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n, r := range zlint.LintCertificate(c).Results {
		if r.Status == lint.Error || r.Status == lint.Fatal || r.Status == lint.Warn {
			out = append(out, n+" "+r.Status.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestMarshalTBSRandom: randomized templates of the shapes Prepare makes
// and around them (serials of every length and with the high bit set,
// times from year 0 to 9999 across the UTCTime boundary in any zone,
// printable, starred, non-ASCII, empty and long names, any key usage, any
// subset of the profiles' extended key usages, names, URLs and key
// identifiers, extra extensions), for every CA and subject key type: when
// marshalTBS encodes one, it is CreateCertificate's TBSCertificate byte for
// byte; when CreateCertificate refuses one, createCertificate gives the
// same error.
func TestMarshalTBSRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(16, 2026))
	subjects := map[keytype.Type]crypto.Signer{}
	for _, kt := range caKeyTypes {
		subjects[kt], _ = keytype.Generate(kt)
	}
	encoded, fellBack := 0, 0
	var cache extCache // shared: some templates find the extensions of others
	covered := map[string]int{}
	for _, caKT := range caKeyTypes {
		c := newTestCA(t, caKT)
		sa, _ := signingAlgorithm(c.issuer.key.Public())
		for n := range 500 {
			tmpl := randomTemplate(rng, c.inter)
			pub := subjects[caKeyTypes[rng.IntN(len(caKeyTypes))]].Public()
			name := fmt.Sprintf("%s/%d", caKT, n)
			want, wantErr := x509.CreateCertificate(rand.Reader, tmpl, c.inter, pub, c.issuer.key)
			got, gotErr := createCertificate(tmpl, c.inter, pub, c.issuer.key, &cache)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("%s: error %v, want %v (template %+v)", name, gotErr, wantErr, tmpl)
			}
			tbs, ok := marshalTBS(tmpl, c.inter, pub, sa.der, nil)
			if !ok {
				fellBack++
				continue
			}
			encoded++
			for feature, has := range map[string]bool{
				"year 2049":            tmpl.NotBefore.UTC().Year() == 2049 || tmpl.NotAfter.UTC().Year() == 2049,
				"year 2050":            tmpl.NotBefore.UTC().Year() == 2050 || tmpl.NotAfter.UTC().Year() == 2050,
				"year before 1950":     tmpl.NotBefore.UTC().Year() < 1950 || tmpl.NotAfter.UTC().Year() < 1950,
				"serial high bit":      tmpl.SerialNumber.BitLen()%8 == 0,
				"empty subject":        tmpl.Subject.CommonName == "" && tmpl.RawSubject == nil,
				"UTF8String subject":   strings.ContainsAny(tmpl.Subject.CommonName, "*&_üΩ名"),
				"long subject":         len(tmpl.Subject.CommonName) > 127,
				"self-issued":          tmpl.RawSubject != nil,
				"extra extension":      len(tmpl.ExtraExtensions) > 0,
				"no basic constraints": !tmpl.BasicConstraintsValid,
				"IP and DNS names":     len(tmpl.IPAddresses) > 0 && len(tmpl.DNSNames) > 0,
				"several CRL and OCSP": len(tmpl.CRLDistributionPoints) > 1 && len(tmpl.OCSPServer) > 1,
				"no status URLs":       len(tmpl.CRLDistributionPoints)+len(tmpl.OCSPServer)+len(tmpl.IssuingCertificateURL) == 0,
				"two-byte key usage":   tmpl.KeyUsage >= 1<<8,
				"RSA subject":          reflect.TypeOf(pub) == reflect.TypeOf(subjects[keytype.RSA2048].Public()),
			} {
				if has {
					covered[feature]++
				}
			}
			if wantErr != nil {
				t.Fatalf("%s: encoded a template CreateCertificate refuses (%v)", name, wantErr)
			}
			if !bytes.Equal(tbs, rawTBS(t, want)) {
				t.Fatalf("%s: TBS\n%x\nwant\n%x\ntemplate %+v", name, tbs, rawTBS(t, want), tmpl)
			}
			if !bytes.Equal(rawTBS(t, got), tbs) {
				t.Fatalf("%s: createCertificate signed another TBS", name)
			}
			if caKT == keytype.Ed25519 && !bytes.Equal(got, want) {
				t.Fatalf("%s: Ed25519 certificate differs", name)
			}
			// Some stepped-off templates make certificates the parser
			// refuses (a URI naming no valid host): it refuses both alike.
			gotCert, err := x509.ParseCertificate(got)
			if _, wantErr := x509.ParseCertificate(want); fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%s: parse: %v, want %v", name, err, wantErr)
			}
			if err == nil {
				if err := gotCert.CheckSignatureFrom(c.inter); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
	t.Logf("%d encoded, %d left to CreateCertificate; encoded %v", encoded, fellBack, covered)
	if len(covered) != 15 {
		t.Fatalf("not every feature encoded: %v", covered)
	}
}

// randomTemplate is a leaf template near what Prepare makes, one field in
// a few stepped off it.
func randomTemplate(rng *mrand.Rand, parent *x509.Certificate) *x509.Certificate {
	one := func(p int) bool { return rng.IntN(p) == 0 }
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	serial := new(big.Int).SetBytes(bytesN(1 + rng.IntN(20)))
	if one(4) {
		serial.SetBytes(append([]byte{0x80 | byte(rng.Uint32())}, bytesN(19)...)) // high bit set: 21 bytes encoded
	}
	if one(50) {
		serial.SetInt64(0)
	}
	if one(50) {
		serial.Neg(serial.Add(serial, big.NewInt(1)))
	}
	years := []int{0, 1, 999, 1949, 1950, 1999, 2000, 2026, 2049, 2050, 2051, 2106, 9999}
	when := func() time.Time {
		y := 1900 + rng.IntN(300)
		if one(2) {
			y = years[rng.IntN(len(years))]
		}
		if one(40) {
			y = []int{-1, 10000}[rng.IntN(2)] // not encodable
		}
		zone := time.FixedZone("z", (rng.IntN(48)-24)*1800)
		return time.Date(y, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e9), zone)
	}
	names := []string{"", "svc/billing", "ns/prod/sa/api", "a*b", "R&D", "x_y", "café", "名前", "tab\there", "quote\"d", "semi;colon",
		strings.Repeat("long-name/", 30), "Ω" + strings.Repeat("ü", 200)}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageOCSPSigning}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[rng.IntN(len(names))]},
		NotBefore:             when(),
		NotAfter:              when(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: !one(5),
		SubjectKeyId:          bytesN(20 * rng.IntN(2)),
		AuthorityKeyId:        bytesN(20 * rng.IntN(2)),
	}
	if one(3) {
		tmpl.KeyUsage = x509.KeyUsage(rng.IntN(1 << 10))
	}
	for _, u := range usages {
		if one(2) {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, u)
		}
	}
	if !one(4) {
		u := &url.URL{Scheme: "spiffe", Host: "example.org", Path: "/" + tmpl.Subject.CommonName}
		if one(30) {
			u = &url.URL{Scheme: "spiffe", Opaque: "//example.org/ü"} // String writes it as is: CreateCertificate refuses it
		}
		tmpl.URIs = []*url.URL{u}
	}
	hosts := []string{"localhost", "gw.example.org", "a.b.c.internal", "*.example.org", strings.Repeat("x", 63) + ".example.org"}
	for range rng.IntN(4) {
		tmpl.DNSNames = append(tmpl.DNSNames, hosts[rng.IntN(len(hosts))])
	}
	if one(30) {
		tmpl.DNSNames = append(tmpl.DNSNames, "bücher.example") // not IA5: CreateCertificate refuses it
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IP{10, 1, 2, 3}, net.ParseIP("::1"), net.ParseIP("2001:db8::7"), net.ParseIP("::ffff:192.0.2.1")}
	for range rng.IntN(4) {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ips[rng.IntN(len(ips))])
	}
	for range rng.IntN(3) {
		tmpl.CRLDistributionPoints = append(tmpl.CRLDistributionPoints, fmt.Sprintf("http://ca.example.org/crl/%x", bytesN(8)))
	}
	for range rng.IntN(3) {
		tmpl.OCSPServer = append(tmpl.OCSPServer, "http://ca.example.org/ocsp")
	}
	for range rng.IntN(3) {
		tmpl.IssuingCertificateURL = append(tmpl.IssuingCertificateURL, fmt.Sprintf("http://ca.example.org/ca/%x.crt", bytesN(4)))
	}
	if one(3) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ocspNoCheck)
	}
	if one(8) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, uint32ToInt(rng.Uint32())}, Critical: one(2), Value: bytesN(rng.IntN(200))})
	}
	if one(40) {
		tmpl.Subject.CommonName = "\xff\xfe" // not UTF-8: CreateCertificate refuses it
	}
	// Now and then a field Prepare never sets, or sets otherwise.
	switch rng.IntN(48) {
	case 0:
		tmpl.IsCA = true
	case 1:
		tmpl.EmailAddresses = []string{"a@example.org"}
	case 2:
		tmpl.SignatureAlgorithm = x509.PureEd25519
	case 3:
		tmpl.Subject.Organization = []string{"certgate"}
	case 4:
		tmpl.RawSubject = parent.RawSubject // self-issued: the template's AKI stays
	case 5:
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: []byte{3, 2, 7, 0x80}})
	case 6:
		tmpl.MaxPathLen = 1
	case 7:
		tmpl.MaxPathLen = -1
	case 8:
		tmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{{1, 2, 3, 4}}
	case 9:
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageCodeSigning)
	case 10:
		tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "x"}}
	case 11:
		tmpl.SerialNumber = nil
	}
	return tmpl
}

func uint32ToInt(v uint32) int { return int(v >> 1) }

// TestMarshalTBSFallsBack: the templates marshalTBS does not encode.
func TestMarshalTBSFallsBack(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/a")}, GatewayProfile)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := signingAlgorithm(c.issuer.key.Public())
	if _, ok := marshalTBS(p.tmpl, c.inter, p.pub, sa.der, nil); !ok {
		t.Fatal("Prepare's template not encoded")
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for name, change := range map[string]func(tmpl *x509.Certificate) crypto.PublicKey{
		"CA":               func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.IsCA = true; return p.pub },
		"policies":         func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.Policies = []x509.OID{{}}; return p.pub },
		"name constraints": func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.PermittedURIDomains = []string{"x"}; return p.pub },
		"e-mail":           func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.EmailAddresses = []string{"a@b"}; return p.pub },
		"signature algorithm": func(tmpl *x509.Certificate) crypto.PublicKey {
			tmpl.SignatureAlgorithm = x509.ECDSAWithSHA512
			return p.pub
		},
		"organization": func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.Subject.Organization = []string{"o"}; return p.pub },
		"unknown EKU": func(tmpl *x509.Certificate) crypto.PublicKey {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
			return p.pub
		},
		"extension overrides SAN": func(tmpl *x509.Certificate) crypto.PublicKey {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtSAN}}
			return p.pub
		},
		"no serial": func(tmpl *x509.Certificate) crypto.PublicKey { tmpl.SerialNumber = nil; return p.pub },
		"P-224 key": func(tmpl *x509.Certificate) crypto.PublicKey { return &p224.PublicKey },
	} {
		tmpl := *p.tmpl
		pub := change(&tmpl)
		if _, ok := marshalTBS(&tmpl, c.inter, pub, sa.der, nil); ok {
			t.Errorf("%s: encoded", name)
		}
	}
}

// wrongSigner answers for the issuer's public key but signs with another.
type wrongSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (w wrongSigner) Public() crypto.PublicKey { return w.pub }

// TestIssueRefusesWrongSignature: a signer whose signature does not verify
// with the issuer's key is refused, for each key type, as
// CreateCertificate refuses it.
func TestIssueRefusesWrongSignature(t *testing.T) {
	for _, tc := range []struct {
		kt   keytype.Type
		want string
	}{
		{keytype.ECDSAP256, "ca: sign: x509: signature returned by signer is invalid: x509: ECDSA verification failure"},
		{keytype.ECDSAP384, "ca: sign: x509: signature returned by signer is invalid: x509: ECDSA verification failure"},
		{keytype.Ed25519, "ca: sign: x509: signature returned by signer is invalid: x509: Ed25519 verification failure"},
		{keytype.RSA2048, "ca: sign: x509: signature returned by signer is invalid: crypto/rsa: verification error"},
	} {
		c := newTestCA(t, tc.kt)
		other, _ := keytype.Generate(tc.kt)
		iss, err := NewIssuer(c.inter, wrongSigner{Signer: other, pub: c.issuer.key.Public()}, "example.org", c.clock)
		if err != nil {
			t.Fatal(err)
		}
		p := prepareClient(t, iss)
		if _, err := iss.Issue(p); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %s", tc.kt, err, tc.want)
		}
		_, err = x509.CreateCertificate(rand.Reader, p.tmpl, c.inter, p.pub, iss.key)
		if want := strings.TrimPrefix(tc.want, "ca: sign: "); err == nil || err.Error() != want {
			t.Errorf("%s: CreateCertificate says %v, not %s", tc.kt, err, want)
		}
	}
}

// prepareClient prepares a client leaf of iss for a new P-256 key.
func prepareClient(t *testing.T, iss *Issuer) *Prepared {
	t.Helper()
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := iss.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/a")}, ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// failingSigner fails every signature.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("token removed")
}

func TestIssueSignerError(t *testing.T) {
	c := newTestCA(t, keytype.ECDSAP256)
	iss, err := NewIssuer(c.inter, failingSigner{c.issuer.key}, "example.org", c.clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(prepareClient(t, iss)); err == nil || err.Error() != "ca: sign: token removed" {
		t.Fatalf("%v", err)
	}
}

// subjectKeyID without reflection is what it was: SHA-1 of the
// subjectPublicKey of x509.MarshalPKIXPublicKey.
func TestSubjectKeyID(t *testing.T) {
	for _, kt := range caKeyTypes {
		key, _ := keytype.Generate(kt)
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &spki); err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum(spki.PublicKey.Bytes)
		want := sum[:]
		got, err := subjectKeyID(key.Public())
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %x %v, want %x", kt, got, err, want)
		}
		_, algID, _ := publicKeyBytes(key.Public())
		if alg, _ := asn1.Marshal(spki.Algorithm); !bytes.Equal(algID, alg) {
			t.Errorf("%s: algorithm %x, want %x", kt, algID, alg)
		}
	}
}

// BenchmarkIssue: a client certificate from Prepare's template, signed and
// built (leafFromTemplate), by x509.CreateCertificate and by
// createCertificate, P-256 CA and subject key, status URLs set.
//
//	flock -o /work/wt/bench.lock go test -run '^$' -bench Issue -benchmem -count 6 -cpu 1 ./internal/ca
func BenchmarkIssue(b *testing.B) {
	c := newTestCA(&testing.T{}, keytype.ECDSAP256)
	c.issuer.CRLURL, c.issuer.OCSPURL, c.issuer.IssuerURL = "http://ca.example.org/crl/ab", "http://ca.example.org/ocsp", "http://ca.example.org/ca/ab.crt"
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := c.issuer.Prepare(Request{PublicKey: key.Public(), Identity: identity.MustParse("spiffe://example.org/ns/prod/sa/billing")}, ClientProfile)
	if err != nil {
		b.Fatal(err)
	}
	sa := &signatureAlgorithm{alg: x509.ECDSAWithSHA256, der: signECDSAP256.der}
	for _, path := range []struct {
		name   string
		create func() ([]byte, error)
	}{
		{"createcertificate", func() ([]byte, error) {
			return x509.CreateCertificate(rand.Reader, p.tmpl, c.inter, p.pub, c.issuer.key)
		}},
		{"encoder", func() ([]byte, error) { return createCertificate(p.tmpl, c.inter, p.pub, c.issuer.key, &c.issuer.exts) }},
	} {
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				der, err := path.create()
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := leafFromTemplate(der, p.tmpl, c.inter, p.pub, sa); !ok {
					b.Fatal("not built")
				}
			}
		})
	}
	// The encoding alone, with the profile's extensions kept and made
	// each time.
	for _, cache := range []*extCache{&c.issuer.exts, nil} {
		b.Run(fmt.Sprintf("tbs/cached=%v", cache != nil), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := marshalTBS(p.tmpl, c.inter, p.pub, sa.der, cache); !ok {
					b.Fatal("not encoded")
				}
			}
		})
	}
}

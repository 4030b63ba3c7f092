package diagnose

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testca"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeLookup is the one store method Diagnose calls.
type fakeLookup struct {
	certs map[string]store.Certificate
	err   error
}

func (f fakeLookup) GetCertificate(_ context.Context, serial string) (store.Certificate, error) {
	if f.err != nil {
		return store.Certificate{}, f.err
	}
	c, ok := f.certs[serial]
	if !ok {
		return store.Certificate{}, fmt.Errorf("store: certificate %s: %w", serial, store.ErrNotFound)
	}
	return c, nil
}

func record(c *x509.Certificate, rv *store.Revocation) fakeLookup {
	in := describe(c, "leaf")
	return fakeLookup{certs: map[string]store.Certificate{
		in.Serial: {Serial: in.Serial, Fingerprint: in.SHA256, Revocation: rv},
	}}
}

// issue signs tmpl with parent's key; parent nil means self-signed.
func issue(t *testing.T, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// constrained builds root (URI name constraint example.org) -> intermediate
// -> leaf with the given URI.
func constrained(t *testing.T, uri string) (root, inter, leaf *x509.Certificate) {
	t.Helper()
	ca := func(cn string, pathLen int) *x509.Certificate {
		return &x509.Certificate{
			Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour * 24 * 365),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
			MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
		}
	}
	rootTmpl := ca("constrained root", 1)
	rootTmpl.PermittedURIDomains = []string{"example.org"}
	root, rootKey := issue(t, rootTmpl, nil, nil)
	inter, interKey := issue(t, ca("constrained intermediate", 0), root, rootKey)
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "x"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{u},
	}, inter, interKey)
	return root, inter, leaf
}

func brokenSignature(t *testing.T, c *x509.Certificate) *x509.Certificate {
	t.Helper()
	der := slices.Clone(c.Raw)
	der[len(der)-1] ^= 0x01 // the last byte of the ECDSA signature's s
	bad, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

const (
	rootDN  = "CN=example.org test root,O=certgate test"
	interDN = "CN=example.org test intermediate,O=certgate test"
)

func TestDiagnose(t *testing.T) {
	ca := testca.New(t, "example.org", testca.WithNow(now))
	other := testca.New(t, "other.org", testca.WithNow(now))
	lookAlike := testca.New(t, "example.org", testca.WithNow(now)) // same names, other keys
	valid := ca.Issue(t)
	early := ca.Issue(t, testca.WithValidity(now.Add(2*time.Hour), now.Add(26*time.Hour)))
	serverOnly := ca.Issue(t, testca.WithEKU(x509.ExtKeyUsageServerAuth))
	noID := ca.Issue(t, testca.WithoutID(), testca.WithCN("anon"))
	https := ca.Issue(t, testca.WithID("https://example.org/x"))
	twoIDs := ca.Issue(t, testca.WithURIs("spiffe://example.org/a", "spiffe://example.org/b"))
	otherTD := ca.Issue(t, testca.WithID("spiffe://other.org/svc/x"))
	ncRoot, ncInter, ncEvil := constrained(t, "spiffe://evil.org/x")
	ncGoodRoot, ncGoodInter, ncGood := constrained(t, "spiffe://example.org/x")
	revokedAt := now.Add(-30 * time.Minute)
	revocation := &store.Revocation{Serial: "x", Reason: 1, RevokedAt: revokedAt, RevokedBy: "spiffe://example.org/admin/alice"}
	bundle := []*x509.Certificate{ca.Root}

	tests := []struct {
		name    string
		in      Input
		verdict string
		codes   []string
		warns   []string
	}{{
		name:    "valid leaf",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (24h left)`,
	}, {
		name:    "valid leaf in its trust domain",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now, TrustDomain: "example.org"},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (24h left)`,
	}, {
		name:    "expired",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now.Add(24*time.Hour + 3*time.Hour + 12*time.Minute + 40*time.Second)},
		verdict: "FAIL: expired 3h12m ago (not after 2026-05-02T12:00:00Z)",
		codes:   []string{CodeExpired},
	}, {
		name:    "expired leaf and intermediate",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now.Add(400 * 24 * time.Hour)},
		verdict: "FAIL: expired 399d ago (not after 2026-05-02T12:00:00Z); intermediate \"" + interDN + "\" expired 35d1h ago (not after 2027-05-01T11:00:00Z); root \"" + rootDN + "\" expired 35d ago (not after 2027-05-01T12:00:00Z)",
		codes:   []string{CodeExpired, CodeExpired, CodeExpired},
	}, {
		name:    "not yet valid",
		in:      Input{Bundle: bundle, Chain: early.Chain, At: now},
		verdict: "FAIL: not yet valid: starts in 2h (not before 2026-05-01T14:00:00Z)",
		codes:   []string{CodeNotYetValid},
	}, {
		name:    "--at moves the time into the validity window",
		in:      Input{Bundle: bundle, Chain: early.Chain, At: now.Add(3 * time.Hour)},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T14:00:00Z (23h left)`,
	}, {
		name: "unknown authority: another root",
		in:   Input{Bundle: []*x509.Certificate{other.Root}, Chain: valid.Chain, At: now},
		verdict: `FAIL: unknown authority: the chain stops at issuer "` + rootDN + `" of intermediate "` + interDN +
			`", which is neither in the bundle nor in the chain (bundle roots: "CN=other.org test root,O=certgate test")`,
		codes: []string{CodeUnknownAuthority},
	}, {
		name:    "unknown authority: intermediate missing",
		in:      Input{Bundle: bundle, Chain: valid.Chain[:1], At: now},
		verdict: `FAIL: unknown authority: the chain stops at issuer "` + interDN + `" of the leaf, which is neither in the bundle nor in the chain (bundle roots: "` + rootDN + `")`,
		codes:   []string{CodeUnknownAuthority},
	}, {
		name:    "unknown authority: empty bundle",
		in:      Input{Chain: valid.Chain, At: now},
		verdict: `FAIL: unknown authority: the chain stops at issuer "` + rootDN + `" of intermediate "` + interDN + `", which is neither in the bundle nor in the chain (the bundle is empty)`,
		codes:   []string{CodeUnknownAuthority},
	}, {
		name:    "unknown authority: a root with the same name and another key",
		in:      Input{Bundle: []*x509.Certificate{lookAlike.Root}, Chain: valid.Chain, At: now},
		verdict: `FAIL: unknown authority: bundle root "` + rootDN + `" has the name of the issuer of intermediate "` + interDN + `" but another key`,
		codes:   []string{CodeUnknownAuthority},
	}, {
		name:    "unknown authority: self-signed leaf",
		in:      Input{Bundle: bundle, Chain: []*x509.Certificate{other.Root}, At: now},
		verdict: `FAIL: unknown authority: the chain ends at self-signed "CN=other.org test root,O=certgate test", which is not in the bundle (bundle roots: "` + rootDN + `"); the leaf is a CA certificate (basic constraints CA:TRUE); a client certificate must not be one; no URI SAN: the leaf carries no SPIFFE ID`,
		codes:   []string{CodeUnknownAuthority, CodeLeafIsCA, CodeNoURISAN},
	}, {
		name:    "serverAuth only",
		in:      Input{Bundle: bundle, Chain: serverOnly.Chain, At: now},
		verdict: "FAIL: wrong EKU: the leaf is not for client auth (extended key usages: serverAuth)",
		codes:   []string{CodeWrongEKU},
	}, {
		name:    "URI outside the root's name constraint",
		in:      Input{Bundle: []*x509.Certificate{ncRoot}, Chain: []*x509.Certificate{ncEvil, ncInter}, At: now},
		verdict: `FAIL: outside name constraints: URI spiffe://evil.org/x is not within the permitted URI domains (example.org) of root "CN=constrained root"`,
		codes:   []string{CodeNameConstraint},
	}, {
		name:    "URI inside the root's name constraint",
		in:      Input{Bundle: []*x509.Certificate{ncGoodRoot}, Chain: []*x509.Certificate{ncGood, ncGoodInter}, At: now},
		verdict: `OK: leaf "CN=x" verifies for client auth as spiffe://example.org/x until 2026-05-02T12:00:00Z (24h left)`,
	}, {
		name: "URI outside the name constraint and the trust domain",
		in:   Input{Bundle: []*x509.Certificate{ncRoot}, Chain: []*x509.Certificate{ncEvil, ncInter}, At: now, TrustDomain: "example.org"},
		verdict: `FAIL: outside name constraints: URI spiffe://evil.org/x is not within the permitted URI domains (example.org) of root "CN=constrained root"` +
			"; wrong trust domain: spiffe://evil.org/x is not in trust domain example.org",
		codes: []string{CodeNameConstraint, CodeWrongTrustDomain},
	}, {
		name:    "no URI SAN",
		in:      Input{Bundle: bundle, Chain: noID.Chain, At: now},
		verdict: "FAIL: no URI SAN: the leaf carries no SPIFFE ID",
		codes:   []string{CodeNoURISAN},
	}, {
		name:    "not a SPIFFE ID",
		in:      Input{Bundle: bundle, Chain: https.Chain, At: now},
		verdict: `FAIL: not a valid SPIFFE ID: invalid SPIFFE ID "https://example.org/x": must start with spiffe://`,
		codes:   []string{CodeInvalidSPIFFEID},
	}, {
		name:    "two URI SANs",
		in:      Input{Bundle: bundle, Chain: twoIDs.Chain, At: now},
		verdict: "FAIL: the leaf has 2 URI SANs (spiffe://example.org/a, spiffe://example.org/b); a client certificate carries exactly one SPIFFE ID",
		codes:   []string{CodeManyURISANs},
	}, {
		name:    "wrong trust domain",
		in:      Input{Bundle: bundle, Chain: otherTD.Chain, At: now, TrustDomain: "example.org"},
		verdict: "FAIL: wrong trust domain: spiffe://other.org/svc/x is not in trust domain example.org",
		codes:   []string{CodeWrongTrustDomain},
	}, {
		name: "broken signature",
		in:   Input{Bundle: bundle, Chain: []*x509.Certificate{brokenSignature(t, valid.Cert), ca.Intermediate}, At: now},
		verdict: `FAIL: signature invalid: the signature of the leaf does not verify with the key of its issuer "` + interDN +
			`" (x509: ECDSA verification failure)`,
		codes: []string{CodeSignatureInvalid},
	}, {
		name:    "revoked",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now, Revocations: record(valid.Cert, revocation)},
		verdict: "FAIL: revoked 30m ago (at 2026-05-01T11:30:00Z by spiffe://example.org/admin/alice, reason keyCompromise (1))",
		codes:   []string{CodeRevoked},
	}, {
		name:    "--at before the revocation",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now.Add(-time.Hour), Revocations: record(valid.Cert, revocation)},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (25h left)`,
		warns:   []string{CodeRevokedLater},
	}, {
		name:    "known to the store, not revoked",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now, Revocations: record(valid.Cert, nil)},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (24h left)`,
	}, {
		name:    "unknown to the store",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now, Revocations: fakeLookup{}},
		verdict: `OK: leaf "CN=test" verifies for client auth as spiffe://example.org/svc/test until 2026-05-02T12:00:00Z (24h left)`,
		warns:   []string{CodeNotInStore},
	}, {
		name:    "store failing",
		in:      Input{Bundle: bundle, Chain: valid.Chain, At: now, Revocations: fakeLookup{err: fmt.Errorf("store: %w: disk I/O error", store.ErrUnavailable)}},
		verdict: "FAIL: could not check revocation of serial " + valid.Cert.SerialNumber.Text(16) + ": store: store unavailable: disk I/O error",
		codes:   []string{CodeRevocationFailed},
	}, {
		name:    "everything at once",
		in:      Input{Bundle: bundle, Chain: serverOnly.Chain, At: now.Add(25 * time.Hour), TrustDomain: "other.org", Revocations: record(serverOnly.Cert, revocation)},
		verdict: "FAIL: expired 1h ago (not after 2026-05-02T12:00:00Z); wrong EKU: the leaf is not for client auth (extended key usages: serverAuth); wrong trust domain: spiffe://example.org/svc/test is not in trust domain other.org; revoked 25h30m ago (at 2026-05-01T11:30:00Z by spiffe://example.org/admin/alice, reason keyCompromise (1))",
		codes:   []string{CodeExpired, CodeWrongEKU, CodeWrongTrustDomain, CodeRevoked},
	}, {
		name:    "empty chain",
		in:      Input{Bundle: bundle, At: now},
		verdict: "FAIL: no certificate to verify",
		codes:   []string{CodeEmptyChain},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Diagnose(context.Background(), tt.in)
			if got := rep.Verdict(); got != tt.verdict {
				t.Errorf("verdict:\n got %s\nwant %s", got, tt.verdict)
			}
			if got := rep.Codes(); !slices.Equal(got, tt.codes) && !(len(got) == 0 && len(tt.codes) == 0) {
				t.Errorf("codes = %q, want %q", got, tt.codes)
			}
			var warns []string
			for _, w := range rep.Warnings {
				warns = append(warns, w.Code)
			}
			if !slices.Equal(warns, tt.warns) {
				t.Errorf("warnings = %q, want %q", warns, tt.warns)
			}
			if rep.OK != (len(tt.codes) == 0) {
				t.Errorf("OK = %v with codes %q", rep.OK, rep.Codes())
			}
			// The verdict is never more lenient than crypto/x509.
			if len(tt.in.Chain) > 0 && rep.OK && verifyX509(tt.in) != nil {
				t.Errorf("OK, but x509 refuses: %v", verifyX509(tt.in))
			}
		})
	}
}

func TestDiagnoseChain(t *testing.T) {
	ca := testca.New(t, "example.org", testca.WithNow(now))
	leaf := ca.Issue(t)
	stray := ca.Issue(t, testca.WithID("spiffe://example.org/stray"))
	rep := Diagnose(context.Background(), Input{
		Bundle: []*x509.Certificate{ca.Root},
		Chain:  []*x509.Certificate{leaf.Cert, stray.Cert, ca.Intermediate},
		At:     now,
	})
	var roles []string
	for _, c := range rep.Chain {
		roles = append(roles, c.Role)
	}
	if want := []string{"leaf", "intermediate", "root", "unused"}; !slices.Equal(roles, want) {
		t.Fatalf("roles = %q, want %q", roles, want)
	}
	got := rep.Chain[0]
	if got.Subject != "CN=test" || got.Issuer != interDN || got.SPIFFEID != "spiffe://example.org/svc/test" ||
		got.Serial != leaf.Cert.SerialNumber.Text(16) || !slices.Equal(got.EKU, []string{"clientAuth"}) || got.IsCA ||
		!got.NotAfter.Equal(now.Add(24*time.Hour)) || len(got.SHA256) != 64 {
		t.Errorf("leaf = %+v", got)
	}
	if root := rep.Chain[2]; root.Subject != rootDN || !root.IsCA || len(root.EKU) != 0 || root.EKU == nil {
		t.Errorf("root = %+v", root)
	}
}

// An intermediate whose EKUs exclude client auth, one that is no CA, and a
// path length exceeded: rules x509 enforces, each named.
func TestDiagnoseCARules(t *testing.T) {
	rootTmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "r"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}
	root, rootKey := issue(t, rootTmpl, nil, nil)
	inter, interKey := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "i"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: false, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, root, rootKey)
	leaf, _ := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "l"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		URIs: []*url.URL{{Scheme: "spiffe", Host: "example.org", Path: "/l"}},
	}, inter, interKey)
	rep := Diagnose(context.Background(), Input{Bundle: []*x509.Certificate{root}, Chain: []*x509.Certificate{leaf, inter}, At: now})
	want := `FAIL: intermediate "CN=i" is not a CA (no basic constraints CA:TRUE) but issued the leaf; ` +
		`root "CN=r" allows 0 intermediate(s) below it (path length 0) but the chain has 1; ` +
		`wrong EKU: intermediate "CN=i" limits extended key usages to serverAuth, which excludes client auth`
	if got := rep.Verdict(); got != want {
		t.Errorf("verdict:\n got %s\nwant %s", got, want)
	}
	if want := []string{CodeNotCA, CodePathLength, CodeWrongEKU}; !slices.Equal(rep.Codes(), want) {
		t.Errorf("codes = %q, want %q", rep.Codes(), want)
	}
}

func TestFromX509(t *testing.T) {
	tests := []struct {
		err  error
		code string
	}{
		{x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time x is after y"}, CodeExpired},
		{x509.CertificateInvalidError{Reason: x509.CANotAuthorizedForThisName}, CodeNameConstraint},
		{x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}, CodeWrongEKU},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, CodeNotCA},
		{x509.CertificateInvalidError{Reason: x509.TooManyIntermediates}, CodePathLength},
		{x509.UnknownAuthorityError{}, CodeUnknownAuthority},
		{x509.UnhandledCriticalExtension{}, CodeCriticalExtension},
		{errors.New("x509: something new"), CodeVerifyFailed},
	}
	for _, tt := range tests {
		if got := fromX509(tt.err); got.Code != tt.code || got.Message != "crypto/"+tt.err.Error() {
			t.Errorf("fromX509(%v) = %+v, want code %s", tt.err, got, tt.code)
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		42 * time.Second:                 "42s",
		12*time.Minute + 59*time.Second:  "12m",
		3*time.Hour + 12*time.Minute:     "3h12m",
		5 * time.Hour:                    "5h",
		-(47*time.Hour + 59*time.Minute): "47h59m",
		2*24*time.Hour + 5*time.Hour:     "2d5h",
		400 * 24 * time.Hour:             "400d",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

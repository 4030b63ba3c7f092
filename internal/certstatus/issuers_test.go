package certstatus

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"
)

// mapKeys is a ca.KeySource over keys in memory.
type mapKeys map[string]crypto.Signer

func (m mapKeys) Key(_ context.Context, c store.CACert) (crypto.Signer, error) {
	if k, ok := m[c.Fingerprint]; ok {
		return k, nil
	}
	return nil, errors.New("no such key")
}

func caRow(kind, state string, gen int, cert, parent *x509.Certificate) store.CACert {
	return store.CACert{
		Fingerprint: ca.Fingerprint(cert), Kind: kind, KeyID: ca.KeyID(cert), IssuerKeyID: ca.KeyID(parent), Generation: gen,
		State: state, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, KeyType: "ecdsa-p256", KeyURI: "sealed:", DER: cert.Raw,
	}
}

// twoIntermediates makes a root and two intermediates of generations 1
// and 2 under it, keys in memory, and returns them with set, which builds
// the hierarchy of the CA rows given and makes it f's authority's.
func twoIntermediates(t *testing.T, f *fixture) (root, i1, i2 *x509.Certificate, set func(rows ...store.CACert) *ca.Hierarchy) {
	t.Helper()
	keys := mapKeys{}
	rootKey, _ := keytype.Generate(keytype.ECDSAP256)
	root, err := ca.CreateRoot(ca.RootOptions{TrustDomain: td, Key: rootKey, Now: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	keys[ca.Fingerprint(root)] = rootKey
	inter := func(gen int) *x509.Certificate {
		k, _ := keytype.Generate(keytype.ECDSAP256)
		c, err := ca.CreateIntermediate(ca.IntermediateOptions{Root: root, RootKey: rootKey, Key: k, Now: f.clock.Now(), Generation: gen})
		if err != nil {
			t.Fatal(err)
		}
		keys[ca.Fingerprint(c)] = k
		return c
	}
	i1, i2 = inter(1), inter(2)
	opts := ca.HierarchyOptions{TrustDomain: td, URLs: ca.URLs{Base: "http://status.example"}, Keys: keys, Clock: f.clock}
	set = func(rows ...store.CACert) *ca.Hierarchy {
		t.Helper()
		h, err := ca.BuildHierarchy(context.Background(), rows, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.authz.SetHierarchy(h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	return root, i1, i2, set
}

// TestStatusPerIssuer: two intermediates under one root, the old one
// retiring. Each answers OCSP and publishes a CRL for its own certificates
// only ("unknown" for another's serial, and for a serial it never issued);
// once the old one is revoked it answers nothing (unauthorized, no CRL) and
// the root's CRL lists it.
func TestStatusPerIssuer(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	root, i1, i2, set := twoIntermediates(t, f)
	rootRow := caRow(store.CAKindRoot, store.CAActive, 1, root, root)
	set(rootRow, caRow(store.CAKindIntermediate, store.CAActive, 1, i1, root))
	a := f.leaf(t, "/svc/a")
	if a.CRLDistributionPoints[0] != "http://status.example/crl/"+ca.KeyID(i1) || a.OCSPServer[0] != "http://status.example/ocsp" ||
		a.IssuingCertificateURL[0] != "http://status.example/ca/"+ca.KeyID(i1)+".crt" {
		t.Fatalf("leaf of I1 names %v %v %v", a.CRLDistributionPoints, a.OCSPServer, a.IssuingCertificateURL)
	}
	set(rootRow, caRow(store.CAKindIntermediate, store.CARetiring, 1, i1, root), caRow(store.CAKindIntermediate, store.CAActive, 2, i2, root))
	b := f.leaf(t, "/svc/b")
	if err := b.CheckSignatureFrom(i2); err != nil {
		t.Fatal("the leaf after the switch is not signed by I2")
	}
	f.revoke(t, a, 1)

	ask := func(issuer, leaf *x509.Certificate, serial *big.Int) (*ocsp.Response, error) {
		t.Helper()
		resp, err := f.svc.Respond(ctx, request(t, issuer, serial, crypto.SHA256, nil))
		if err != nil {
			return nil, err
		}
		r, err := ocsp.ParseResponse(resp.DER, issuer)
		if err != nil {
			t.Fatalf("response about %x under %s does not verify against that issuer: %v", serial, issuer.Subject.CommonName, err)
		}
		return r, nil
	}
	random, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 150))
	for _, tc := range []struct {
		name          string
		issuer, leaf  *x509.Certificate
		serial        *big.Int
		status, reasn int
	}{
		{"revoked leaf of the retiring issuer", i1, a, a.SerialNumber, ocsp.Revoked, 1},
		{"leaf of the active issuer", i2, b, b.SerialNumber, ocsp.Good, 0},
		{"active issuer asked about the other's leaf", i2, a, a.SerialNumber, ocsp.Unknown, 0},
		{"retiring issuer asked about the other's leaf", i1, b, b.SerialNumber, ocsp.Unknown, 0},
		{"serial the issuer never issued", i2, nil, random, ocsp.Unknown, 0},
	} {
		r, err := ask(tc.issuer, tc.leaf, tc.serial)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Status != tc.status || (tc.status == ocsp.Revoked && r.RevocationReason != tc.reasn) {
			t.Errorf("%s: status %d reason %d, want %d", tc.name, r.Status, r.RevocationReason, tc.status)
		}
	}
	crl := func(iss *x509.Certificate) *x509.RevocationList {
		t.Helper()
		c, err := f.svc.CRLFor(ctx, ca.KeyID(iss))
		if err != nil {
			t.Fatal(err)
		}
		rl, err := x509.ParseRevocationList(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		if err := rl.CheckSignatureFrom(iss); err != nil {
			t.Fatalf("CRL of %s: %v", iss.Subject.CommonName, err)
		}
		return rl
	}
	if rl := crl(i1); len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(a.SerialNumber) != 0 {
		t.Errorf("I1's CRL lists %v, want a", rl.RevokedCertificateEntries)
	}
	if rl := crl(i2); len(rl.RevokedCertificateEntries) != 0 {
		t.Errorf("I2's CRL lists %v, want nothing", rl.RevokedCertificateEntries)
	}
	if rl := crl(root); len(rl.RevokedCertificateEntries) != 0 {
		t.Errorf("the root's CRL lists %v before any CA was revoked", rl.RevokedCertificateEntries)
	}

	// I1's key is compromised: revoked. It answers nothing any more; the
	// root's CRL lists it.
	revokedAt := f.clock.Now()
	gone := caRow(store.CAKindIntermediate, store.CARevoked, 1, i1, root)
	gone.RevokedAt, gone.Reason = revokedAt, 1
	set(rootRow, gone, caRow(store.CAKindIntermediate, store.CAActive, 2, i2, root))
	if _, err := ask(i1, a, a.SerialNumber); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("OCSP about a leaf of a revoked intermediate: %v, want unauthorized", err)
	}
	if _, err := f.svc.CRLFor(ctx, ca.KeyID(i1)); !errors.Is(err, ErrNoIssuer) || err.Error() != "certstatus: no CRL for this issuer "+ca.KeyID(i1) {
		t.Errorf("CRL of a revoked intermediate: %v", err)
	}
	f.clock.Advance(time.Second) // the root's CRL is rebuilt at the next event or poll
	rl := crl(root)
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(i1.SerialNumber) != 0 ||
		rl.RevokedCertificateEntries[0].ReasonCode != 1 || rl.ThisUpdate.Before(revokedAt.Truncate(time.Second)) {
		t.Errorf("root CRL = %+v, want I1 revoked for keyCompromise", rl.RevokedCertificateEntries)
	}
}

// TestSignerIssuedBySupersededIssuerValue: a hierarchy reload (a rotation,
// the schedule, another replica) builds new ca.Issuer values for the same
// certificates while the status service may still hold the old ones; an
// OCSP signer asked of an old value is issued by the current value of the
// same certificate (a server once stopped at start on this race, "does not
// answer for its certificates any more"), and refused only once that
// certificate no longer answers status.
func TestSignerIssuedBySupersededIssuerValue(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	root, i1, i2, set := twoIntermediates(t, f)
	rootRow := caRow(store.CAKindRoot, store.CAActive, 1, root, root)
	both := []store.CACert{rootRow, caRow(store.CAKindIntermediate, store.CARetiring, 1, i1, root), caRow(store.CAKindIntermediate, store.CAActive, 2, i2, root)}
	old := set(both...)
	cur := set(both...) // the same rows again: new Issuer values
	if old.Status[ca.KeyID(i1)] == cur.Status[ca.KeyID(i1)] || old.Active == cur.Active {
		t.Fatal("the rebuilt hierarchy reused the Issuer values; the test needs new ones")
	}
	id := identity.MustParse("spiffe://" + td + SignerPath)
	issue := func(by *ca.Issuer) (ca.Issued, error) {
		key, _ := keytype.Generate(keytype.ECDSAP256)
		return f.authz.IssueDirectBy(ctx, by, ca.Request{PublicKey: key.Public(), Identity: id}, ca.OCSPSigningProfile, store.ObtainedServer, id.String())
	}
	for _, c := range []struct {
		name string
		by   *ca.Issuer
		cert *x509.Certificate
	}{{"retiring", old.Status[ca.KeyID(i1)], i1}, {"active", old.Active, i2}} {
		got, err := issue(c.by)
		if err != nil {
			t.Fatalf("%s intermediate, the old Issuer value: %v", c.name, err)
		}
		if err := got.Cert.CheckSignatureFrom(c.cert); err != nil {
			t.Fatalf("%s intermediate: the signer is not signed by it: %v", c.name, err)
		}
	}
	// i1 retired: it answers status no more, whatever the value.
	set(rootRow, caRow(store.CAKindIntermediate, store.CAActive, 2, i2, root))
	for _, by := range []*ca.Issuer{old.Status[ca.KeyID(i1)], cur.Status[ca.KeyID(i1)]} {
		want := "ca: issuer " + ca.KeyID(i1) + " does not answer for its certificates any more"
		if _, err := issue(by); err == nil || err.Error() != want {
			t.Fatalf("retired intermediate: %v, want %q", err, want)
		}
	}
}

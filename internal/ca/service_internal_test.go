package ca

import (
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/keytype"
)

// TestIssueDetailJSON: the audit detail of an issuance encodes as the map
// it was before issueDetail, byte for byte, so entries written before and
// after read the same.
func TestIssueDetailJSON(t *testing.T) {
	for _, d := range []issueDetail{
		{},
		{
			Fingerprint: "ab12", Identity: "spiffe://example.org/svc/a", NotAfter: time.Date(2026, 12, 6, 22, 0, 0, 123456789, time.UTC),
			Obtained: "enroll", Profile: "client", Token: "0123456789abcdef0123456789abcdef",
		},
		{
			Identity: `spiffe://example.org/"q"\<&>` + "\u2028\x01é", NotAfter: time.Date(2049, 12, 31, 23, 59, 59, 0, time.FixedZone("x", 3600)),
			Obtained: "renew", Profile: "gateway", RenewedFrom: "7f", Token: "\xff",
		},
	} {
		got, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{
			"identity": d.Identity, "profile": d.Profile, "obtained": d.Obtained,
			"not_after": d.NotAfter, "fingerprint": d.Fingerprint,
			"token": d.Token, "renewed_from": d.RenewedFrom,
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("issueDetail encodes as\n%s\nthe map as\n%s", got, want)
		}
	}
}

// TestRootPrintsFollowHierarchy: the root fingerprints worked out once per
// hierarchy change with it.
func TestRootPrintsFollowHierarchy(t *testing.T) {
	a, b := newTestCA(t, keytype.ECDSAP256), newTestCA(t, keytype.ECDSAP256)
	type noStore struct{ Store }
	svc, err := NewService(ServiceOptions{Issuer: a.issuer, Roots: []*x509.Certificate{b.root, a.root}, Store: noStore{}, Clock: a.clock})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step, active string, trusted, untrusted []*x509.Certificate) {
		t.Helper()
		for range 2 { // worked out, then kept
			if got := svc.RootFingerprint(); got != active {
				t.Fatalf("%s: RootFingerprint %s, want %s", step, got, active)
			}
			for _, r := range trusted {
				if !svc.TrustsRoot(Fingerprint(r)) {
					t.Fatalf("%s: root %s not trusted", step, r.Subject)
				}
			}
			for _, r := range untrusted {
				if svc.TrustsRoot(Fingerprint(r)) {
					t.Fatalf("%s: root %s trusted", step, r.Subject)
				}
			}
			if svc.TrustsRoot("") || svc.TrustsRoot(strings.Repeat("00", 32)) {
				t.Fatalf("%s: an unknown fingerprint is trusted", step)
			}
		}
	}
	// The root the active intermediate chains to, not the bundle's first.
	check("two roots", Fingerprint(a.root), []*x509.Certificate{a.root, b.root}, nil)
	if err := svc.SetHierarchy(StaticHierarchy(b.issuer, []*x509.Certificate{b.root})); err != nil {
		t.Fatal(err)
	}
	check("new hierarchy", Fingerprint(b.root), []*x509.Certificate{b.root}, []*x509.Certificate{a.root})
	// No root of the bundle signed the active intermediate: the first.
	if err := svc.SetHierarchy(StaticHierarchy(a.issuer, []*x509.Certificate{b.root})); err != nil {
		t.Fatal(err)
	}
	check("no chaining root", Fingerprint(b.root), []*x509.Certificate{b.root}, []*x509.Certificate{a.root})
}

// BenchmarkRootFingerprint: what every token mint paid before rootPrints
// (a signature check per root tried) against the kept answer.
func BenchmarkRootFingerprint(b *testing.B) {
	a := newTestCA(b, keytype.ECDSAP256)
	type noStore struct{ Store }
	svc, err := NewService(ServiceOptions{Issuer: a.issuer, Roots: []*x509.Certificate{a.root}, Store: noStore{}, Clock: a.clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			if a.inter.CheckSignatureFrom(a.root) != nil || Fingerprint(a.root) == "" {
				b.Fatal("no root")
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			if svc.RootFingerprint() == "" {
				b.Fatal("no root")
			}
		}
	})
}

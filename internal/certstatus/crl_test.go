package certstatus

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/store"
)

func parseCRL(t *testing.T, f *fixture, c *CRL) *x509.RevocationList {
	t.Helper()
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(f.inter); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return rl
}

func TestCRLListsRevokedWithReasons(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	compromised := f.leaf(t, "/svc/a")
	plain := f.leaf(t, "/svc/b")
	live := f.leaf(t, "/svc/c")
	revA := f.revoke(t, compromised, 1)
	f.clock.Advance(time.Second)
	revB := f.revoke(t, plain, 0)

	c, err := f.svc.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rl := parseCRL(t, f, c)
	// thisUpdate is backdated, but not to before the last revocation it
	// lists (revB, now).
	if want := revB.RevokedAt.Truncate(time.Second); !rl.ThisUpdate.Equal(want) || !c.ThisUpdate.Equal(want) {
		t.Errorf("thisUpdate %s, want %s (the last revocation)", rl.ThisUpdate, want)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.RevocationTime.After(rl.ThisUpdate) {
			t.Errorf("entry revoked at %s, after thisUpdate %s", e.RevocationTime, rl.ThisUpdate)
		}
	}
	// An hour later, with no new revocation, it is backdated a minute.
	f.clock.Advance(time.Hour)
	later, err := f.svc.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(-backdate).Truncate(time.Second); !later.ThisUpdate.Equal(want) {
		t.Errorf("later thisUpdate %s, want %s", later.ThisUpdate, want)
	}
	f.clock.Advance(-time.Hour)
	if got := rl.NextUpdate.Sub(rl.ThisUpdate); got != DefaultCRLValidity {
		t.Errorf("nextUpdate - thisUpdate = %s, want %s", got, DefaultCRLValidity)
	}
	if c.Position != 2 || rl.Number.Cmp(crlNumber(2, c.ThisUpdate)) != 0 {
		t.Errorf("CRL number %s at position %d, want 2<<32 + %d", rl.Number, c.Position, c.ThisUpdate.Unix())
	}
	if !bytes.Equal(rl.AuthorityKeyId, f.inter.SubjectKeyId) {
		t.Errorf("AKI %x, want the intermediate's SKI %x", rl.AuthorityKeyId, f.inter.SubjectKeyId)
	}
	want := map[string]struct {
		at     time.Time
		reason int
	}{
		ca.SerialHex(compromised.SerialNumber): {revA.RevokedAt, 1},
		ca.SerialHex(plain.SerialNumber):       {revB.RevokedAt, 0},
	}
	if len(rl.RevokedCertificateEntries) != len(want) || c.Entries != len(want) {
		t.Fatalf("%d entries, want %d", len(rl.RevokedCertificateEntries), len(want))
	}
	for _, e := range rl.RevokedCertificateEntries {
		w, ok := want[ca.SerialHex(e.SerialNumber)]
		if !ok {
			t.Fatalf("unexpected serial %x (live is %x)", e.SerialNumber, live.SerialNumber)
		}
		if !e.RevocationTime.Equal(w.at.Truncate(time.Second)) || e.ReasonCode != w.reason {
			t.Errorf("entry %x: %s reason %d, want %s reason %d", e.SerialNumber, e.RevocationTime, e.ReasonCode, w.at, w.reason)
		}
		// RFC 5280 5.3.1: unspecified is expressed by leaving the reason out.
		if hasReason := len(e.Extensions) == 1; hasReason != (w.reason != 0) {
			t.Errorf("entry %x: %d extensions for reason %d", e.SerialNumber, len(e.Extensions), w.reason)
		}
	}
}

func TestCRLNumberGrowsAndCRLIsCachedUntilNews(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	first, err := f.svc.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Entries != 0 || first.Position != 0 {
		t.Fatalf("empty store: %d entries at position %d", first.Entries, first.Position)
	}
	parseCRL(t, f, first)
	again, _ := f.svc.CRL(ctx)
	if again != first {
		t.Fatal("CRL rebuilt without a revocation or a refresh due")
	}
	f.clock.Advance(time.Second)
	f.revoke(t, f.leaf(t, "/svc/a"), 4)
	second, err := f.svc.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.Entries != 1 || second.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("after a revocation: %d entries, number %s after %s", second.Entries, second.Number, first.Number)
	}
	// Re-issued at half its validity without news: a new, larger number.
	f.clock.Advance(DefaultCRLValidity/2 + time.Second)
	third, _ := f.svc.CRL(ctx)
	if third == second || third.Number.Cmp(second.Number) <= 0 || third.Position != second.Position {
		t.Fatalf("scheduled re-issue: number %s after %s", third.Number, second.Number)
	}
	if !third.NextUpdate.After(second.NextUpdate) {
		t.Fatalf("re-issued CRL's nextUpdate %s is not later than %s", third.NextUpdate, second.NextUpdate)
	}
}

func TestCRLKeepsExpiredEntryForOneMoreCRL(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := context.Background()
	c := f.leaf(t, "/svc/a")
	f.revoke(t, c, 1)
	// Just expired: still listed, so one CRL after its expiry shows it.
	f.clock.Set(c.NotAfter.Add(time.Minute))
	crl, err := f.svc.CRL(ctx)
	if err != nil || crl.Entries != 1 {
		t.Fatalf("just after expiry: %d entries, %v", crl.Entries, err)
	}
	f.clock.Set(c.NotAfter.Add(DefaultCRLValidity + time.Second))
	crl, err = f.svc.CRL(ctx)
	if err != nil || crl.Entries != 0 {
		t.Fatalf("one validity after expiry: %d entries, %v", crl.Entries, err)
	}
	// A fresh service (a restart) reads the same view from the store.
	f.clock.Set(c.NotAfter.Add(time.Minute))
	restarted, err := New(Options{Authority: f.authz, Store: f.st, Notifier: f.st, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	crl, err = restarted.CRL(ctx)
	if err != nil || crl.Entries != 1 || crl.Position != 1 {
		t.Fatalf("restart: %d entries at position %d, %v", crl.Entries, crl.Position, err)
	}
}

func TestCRLNumberFitsAndOrders(t *testing.T) {
	t0 := time.Unix(1_900_000_000, 0)
	cases := []struct {
		a, b   int64
		ta, tb time.Time
	}{
		{1, 2, t0, t0},                  // a revocation
		{5, 5, t0, t0.Add(time.Second)}, // a re-issue
		{5, 6, t0.Add(time.Hour), t0},   // a later position wins even if built earlier by another replica
		{0, 1 << 40, t0, t0.Add(-time.Hour)},
	}
	for _, c := range cases {
		if crlNumber(c.a, c.ta).Cmp(crlNumber(c.b, c.tb)) >= 0 {
			t.Errorf("number(%d, %d) >= number(%d, %d)", c.a, c.ta.Unix(), c.b, c.tb.Unix())
		}
	}
	maxNum := crlNumber(1<<63-1, time.Unix(1<<32-1, 0))
	der, _ := asn1.Marshal(maxNum)
	if n := len(der) - 2; n > 20 || maxNum.Cmp(new(big.Int).Lsh(big.NewInt(1), 159)) >= 0 {
		t.Errorf("largest CRL number takes %d octets, RFC 5280 allows 20", n)
	}
}

func TestCRLStoreDown(t *testing.T) {
	f := newFixture(t, Settings{})
	f.st.Close()
	_, err := f.svc.CRL(context.Background())
	if err == nil {
		t.Fatal("CRL built with the store closed")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("error %v does not wrap store.ErrUnavailable", err)
	}
	if want := "certstatus: read revocations: store: revocation snapshot: store unavailable: store is closed"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestViewIgnoresMalformedSerials(t *testing.T) {
	f := newFixture(t, Settings{})
	now := f.clock.Now()
	f.svc.mu.Lock()
	for i, s := range []string{"", "xyz", "ABC", "abc", "1"} {
		f.svc.add(store.Event{Position: int64(i + 1), Serial: s, Time: now, NotAfter: now.Add(time.Hour), Issuer: f.authz.Issuer().KeyID()})
	}
	f.svc.pos, f.svc.loaded, f.svc.synced = 5, true, now
	got := len(f.svc.revs)
	f.svc.mu.Unlock()
	if got != 2 {
		t.Fatalf("%d revocations in the view, want 2 (abc and 1)", got)
	}
	c, err := f.svc.buildCRL(f.svc.activeState(), 5, now)
	if err != nil {
		t.Fatal(err)
	}
	rl := parseCRL(t, f, c)
	if len(rl.RevokedCertificateEntries) != 2 || rl.RevokedCertificateEntries[0].SerialNumber.Int64() != 0xabc || rl.RevokedCertificateEntries[1].SerialNumber.Int64() != 1 {
		t.Fatalf("entries %v, want abc then 1 (event order)", rl.RevokedCertificateEntries)
	}
}

// Run rebuilds the CRL as soon as a revocation commits, before anyone asks.
func TestRunRebuildsOnRevocation(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	current := func() *CRL {
		is := f.svc.activeState()
		is.crlMu.Lock()
		defer is.crlMu.Unlock()
		return is.crl
	}
	first := current()
	f.revoke(t, f.leaf(t, "/svc/a"), 1)
	deadline := time.Now().Add(5 * time.Second)
	for c := current(); c == first || c.Entries != 1; c = current() {
		if time.Now().After(deadline) {
			t.Fatalf("CRL not rebuilt after a revocation: %d entries at position %d", c.Entries, c.Position)
		}
		time.Sleep(time.Millisecond)
	}
}

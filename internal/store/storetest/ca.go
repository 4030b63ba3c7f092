package storetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

// NewCACert returns a CA certificate record of kind in state, with random
// DER and key ID, valid for a year from T0.
func NewCACert(kind, state string, generation int) store.CACert {
	der := make([]byte, 300)
	rand.Read(der)
	sum := sha256.Sum256(der)
	kid := make([]byte, 20)
	rand.Read(kid)
	c := store.CACert{
		Fingerprint: hex.EncodeToString(sum[:]),
		Kind:        kind,
		KeyID:       hex.EncodeToString(kid),
		Generation:  generation,
		State:       state,
		NotBefore:   T0.Add(-time.Minute),
		NotAfter:    T0.Add(365 * 24 * time.Hour),
		KeyType:     "ecdsa-p256",
		KeyURI:      "sealed:",
		SealedKey:   []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\n..."),
		DER:         der,
	}
	c.IssuerKeyID = c.KeyID
	if kind == store.CAKindCross {
		c.KeyURI, c.SealedKey = "", nil
	}
	return c
}

func caEntry(subject string) audit.Entry {
	return audit.Entry{Time: T0, Actor: Admin, Action: "ca.test", Subject: subject}
}

func (e *env) cas() []store.CACert {
	e.t.Helper()
	cs, err := e.s.ListCAs(e.ctx)
	if err != nil {
		e.t.Fatalf("ListCAs: %v", err)
	}
	return cs
}

func (e *env) rotations() []store.Rotation {
	e.t.Helper()
	rs, err := e.s.Rotations(e.ctx)
	if err != nil {
		e.t.Fatalf("Rotations: %v", err)
	}
	return rs
}

// equalCA compares CA records with times by Equal.
func equalCA(t *testing.T, got, want store.CACert) {
	t.Helper()
	for _, p := range []struct {
		name      string
		got, want *time.Time
	}{{"NotBefore", &got.NotBefore, &want.NotBefore}, {"NotAfter", &got.NotAfter, &want.NotAfter},
		{"CreatedAt", &got.CreatedAt, &want.CreatedAt}, {"UpdatedAt", &got.UpdatedAt, &want.UpdatedAt},
		{"RevokedAt", &got.RevokedAt, &want.RevokedAt}} {
		if !p.got.Equal(*p.want) {
			t.Errorf("%s = %v, want %v", p.name, *p.got, *p.want)
		}
		*p.got = *p.want
	}
	if len(got.SealedKey) == 0 && len(want.SealedKey) == 0 {
		got.SealedKey = want.SealedKey
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CA certificate =\n%+v\nwant\n%+v", got, want)
	}
}

var caTests = []subtest{
	{"InsertAndList", func(t *testing.T, e *env) {
		root := NewCACert(store.CAKindRoot, store.CAActive, 1)
		inter := NewCACert(store.CAKindIntermediate, store.CAActive, 1)
		inter.IssuerKeyID = root.KeyID
		inter.KeyURI, inter.SealedKey = "pkcs11:token=certgate;object=i1?module-path=/x.so&pin-source=file:/p", nil
		id, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{inter, root}, Audit: []audit.Entry{caEntry("init")}, Now: T0})
		if err != nil || id != 0 {
			t.Fatalf("ApplyCAChange = %d, %v", id, err)
		}
		got := e.cas()
		if len(got) != 2 {
			t.Fatalf("%d CA certificates, want 2", len(got))
		}
		// Ordered by kind: intermediate before root.
		root.CreatedAt, root.UpdatedAt, inter.CreatedAt, inter.UpdatedAt = T0, T0, T0, T0
		equalCA(t, got[0], inter)
		equalCA(t, got[1], root)
		evs := e.events()
		if len(evs) != 2 || evs[0].Kind != store.EventCA || evs[0].Serial != inter.Fingerprint || evs[0].Issuer != root.KeyID ||
			evs[1].Serial != root.Fingerprint || !evs[1].NotAfter.Equal(root.NotAfter) {
			t.Errorf("events = %+v, want one %s event per CA certificate in order", evs, store.EventCA)
		}
		if recs := e.auditLog(); len(recs) != 1 || recs[0].Subject != "init" {
			t.Errorf("audit = %+v", recs)
		}
	}},
	{"DuplicateInsertChangesNothing", func(t *testing.T, e *env) {
		root := NewCACert(store.CAKindRoot, store.CAActive, 1)
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{root}, Now: T0}); err != nil {
			t.Fatal(err)
		}
		other := NewCACert(store.CAKindIntermediate, store.CANext, 2)
		_, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{other, root}, Audit: []audit.Entry{caEntry("dup")}, Now: T0})
		wantErr(t, err, store.ErrConflict, "store: CA change: CA certificate "+root.Fingerprint+" is already recorded: changed concurrently")
		if n := len(e.cas()); n != 1 {
			t.Errorf("%d CA certificates after a failed change, want 1", n)
		}
		if n := len(e.events()); n != 1 {
			t.Errorf("%d events after a failed change, want 1", n)
		}
		if n := len(e.auditLog()); n != 0 {
			t.Errorf("%d audit records after a failed change, want 0", n)
		}
	}},
	{"StateChangeIsCompareAndSet", func(t *testing.T, e *env) {
		old := NewCACert(store.CAKindIntermediate, store.CAActive, 1)
		next := NewCACert(store.CAKindIntermediate, store.CANext, 2)
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{old, next}, Now: T0}); err != nil {
			t.Fatal(err)
		}
		later := T0.Add(time.Hour)
		swap := store.CAChange{Update: []store.CAUpdate{
			{Fingerprint: next.Fingerprint, From: store.CANext, To: store.CAActive},
			{Fingerprint: old.Fingerprint, From: store.CAActive, To: store.CARetiring},
		}, Now: later}
		if _, err := e.s.ApplyCAChange(e.ctx, swap); err != nil {
			t.Fatal(err)
		}
		// The same change again: the first update no longer applies, and
		// nothing of the change is written.
		_, err := e.s.ApplyCAChange(e.ctx, swap)
		wantErr(t, err, store.ErrConflict, "store: CA change: CA certificate "+next.Fingerprint+" is not next: changed concurrently")
		got := e.cas()
		states := map[string]string{}
		for _, c := range got {
			states[c.Fingerprint] = c.State
			if c.Fingerprint == old.Fingerprint && !c.UpdatedAt.Equal(later) {
				t.Errorf("updated at %v, want %v", c.UpdatedAt, later)
			}
		}
		if states[old.Fingerprint] != store.CARetiring || states[next.Fingerprint] != store.CAActive {
			t.Errorf("states = %v", states)
		}
		if n := len(e.events()); n != 4 {
			t.Errorf("%d events, want 4 (2 inserts, 2 updates)", n)
		}
	}},
	{"Revoke", func(t *testing.T, e *env) {
		root := NewCACert(store.CAKindRoot, store.CAActive, 1)
		inter := NewCACert(store.CAKindIntermediate, store.CAActive, 1)
		inter.IssuerKeyID = root.KeyID
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{root, inter}, Now: T0}); err != nil {
			t.Fatal(err)
		}
		at := T0.Add(2 * time.Hour)
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Update: []store.CAUpdate{
			{Fingerprint: inter.Fingerprint, From: store.CAActive, To: store.CARevoked, RevokedAt: at, Reason: 1},
		}, Now: at}); err != nil {
			t.Fatal(err)
		}
		for _, c := range e.cas() {
			if c.Fingerprint != inter.Fingerprint {
				continue
			}
			if c.State != store.CARevoked || !c.RevokedAt.Equal(at) || c.Reason != 1 {
				t.Errorf("revoked CA = %s at %v reason %d", c.State, c.RevokedAt, c.Reason)
			}
		}
		evs := e.events()
		last := evs[len(evs)-1]
		if last.Kind != store.EventCA || last.Serial != inter.Fingerprint || last.Reason != 1 || last.Issuer != root.KeyID {
			t.Errorf("revocation event = %+v", last)
		}
	}},
	{"Rotation", func(t *testing.T, e *env) {
		r := store.Rotation{Kind: store.RotateIntermediate, Phase: "started", OldKeyID: "aa", KeyLabel: "certgate-i2", StartedBy: Admin,
			DueAt: T0.Add(time.Hour)}
		id, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Rotation: &r, Audit: []audit.Entry{caEntry("start")}, Now: T0})
		if err != nil || id != 1 {
			t.Fatalf("insert rotation = %d, %v", id, err)
		}
		next := NewCACert(store.CAKindIntermediate, store.CANext, 2)
		r.ID, r.Phase, r.NewKeyID, r.DueAt = id, "published", next.KeyID, time.Time{}
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{next}, Rotation: &r, RotationFrom: "started", Now: T0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		// A second process that also saw "started" loses.
		r2 := r
		r2.Phase = "published"
		_, err = e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{NewCACert(store.CAKindIntermediate, store.CANext, 2)}, Rotation: &r2, RotationFrom: "started", Now: T0})
		wantErr(t, err, store.ErrConflict, "store: CA change: rotation 1 is not in phase started: changed concurrently")
		if n := len(e.cas()); n != 1 {
			t.Errorf("%d CA certificates, want 1: the losing change wrote its insert", n)
		}
		second, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Rotation: &store.Rotation{Kind: store.RotateRoot, Phase: "prepared", Emergency: true, Reason: 1, StartedBy: Admin}, Now: T0})
		if err != nil || second != 2 {
			t.Fatalf("second rotation = %d, %v", second, err)
		}
		rs := e.rotations()
		if len(rs) != 2 {
			t.Fatalf("%d rotations", len(rs))
		}
		got := rs[0]
		if got.ID != 1 || got.Kind != store.RotateIntermediate || got.Phase != "published" || got.NewKeyID != next.KeyID ||
			got.OldKeyID != "aa" || got.KeyLabel != "certgate-i2" || !got.DueAt.IsZero() || !got.StartedAt.Equal(T0) ||
			!got.UpdatedAt.Equal(T0.Add(time.Minute)) || got.StartedBy != Admin || got.Emergency {
			t.Errorf("rotation = %+v", got)
		}
		if !rs[1].Emergency || rs[1].Reason != 1 || rs[1].Kind != store.RotateRoot {
			t.Errorf("second rotation = %+v", rs[1])
		}
	}},
	{"Usage", func(t *testing.T, e *env) {
		a := e.issue("spiffe://example.org/a", T0)
		b := NewCertificate("spiffe://example.org/b", T0.Add(time.Hour))
		b.Issuer = "bb"
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(b, "")); err != nil {
			t.Fatal(err)
		}
		e.issue("spiffe://example.org/c", T0.Add(-48*time.Hour)) // expired at T0+1h
		e.revoke(store.RevokeRequest{Serial: a.Serial})
		signer := NewCertificate("spiffe://example.org/server/ocsp-signer", T0.Add(30*time.Hour))
		signer.Issuer = "bb"
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(signer, "")); err != nil {
			t.Fatal(err)
		}
		u, err := e.s.IssuerUsage(e.ctx, T0.Add(time.Hour), signer.Identity)
		if err != nil {
			t.Fatal(err)
		}
		if got := u[Issuer]; got.Live != 0 || !got.LastNotAfter.Equal(a.NotAfter) {
			t.Errorf("usage of %s = %+v, want 0 live (one revoked, one expired), last %v", Issuer, got, a.NotAfter)
		}
		if got := u[Issuer]; !got.LastLive.IsZero() {
			t.Errorf("last live of %s = %v, want none", Issuer, got.LastLive)
		}
		if got := u["bb"]; got.Live != 1 || !got.LastNotAfter.Equal(b.NotAfter) || !got.LastLive.Equal(b.NotAfter) {
			t.Errorf("usage of bb = %+v", got)
		}
		if len(u) != 2 {
			t.Errorf("usage = %+v, want two issuers", u)
		}
		// The revocation event names the issuer.
		evs := e.events()
		if evs[len(evs)-1].Issuer != Issuer {
			t.Errorf("revocation event issuer = %q, want %q", evs[len(evs)-1].Issuer, Issuer)
		}
		snap, err := e.s.RevocationSnapshot(e.ctx, T0)
		if err != nil || len(snap.Revoked) != 1 || snap.Revoked[0].Issuer != Issuer {
			t.Errorf("snapshot = %+v, %v", snap, err)
		}
	}},
	{"Backfill", func(t *testing.T, e *env) {
		// Rows recorded before issuers existed cannot be made through the
		// API; backfill on a store where every row has an issuer changes
		// none of them.
		c := e.issue("spiffe://example.org/a", T0)
		root := NewCACert(store.CAKindRoot, store.CAActive, 1)
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{root}, BackfillIssuer: "cc", Now: T0}); err != nil {
			t.Fatal(err)
		}
		got, err := e.s.GetCertificate(e.ctx, c.Serial)
		if err != nil || got.Issuer != Issuer {
			t.Errorf("issuer after backfill = %q, %v; want %q unchanged", got.Issuer, err, Issuer)
		}
	}},
	{"IssuanceOfInactiveIssuerRefused", func(t *testing.T, e *env) {
		inter := NewCACert(store.CAKindIntermediate, store.CARevoked, 1)
		inter.RevokedAt = T0
		retiring := NewCACert(store.CAKindIntermediate, store.CARetiring, 2)
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Insert: []store.CACert{inter, retiring}, Now: T0}); err != nil {
			t.Fatal(err)
		}
		c := NewCertificate("spiffe://example.org/a", T0)
		c.Issuer = inter.KeyID
		err := e.s.RecordIssuance(e.ctx, NewIssuance(c, ""))
		wantErr(t, err, store.ErrIssuerInactive, "store: record issuance "+c.Serial+": intermediate "+inter.KeyID+" is revoked: issuer may not sign")
		e.wantNothingIssued(c.Serial, 0)
		// A retiring one still signs (its delegated OCSP signers), and an
		// issuer the store does not record is not checked.
		for _, issuer := range []string{retiring.KeyID, "abcdef"} {
			c := NewCertificate("spiffe://example.org/b", T0)
			c.Issuer = issuer
			if err := e.s.RecordIssuance(e.ctx, NewIssuance(c, "")); err != nil {
				t.Errorf("issuer %s: %v", issuer, err)
			}
		}
		// Once it is retired, it is refused: what the store knew of the
		// states before does not outlive a change.
		if _, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Update: []store.CAUpdate{{Fingerprint: retiring.Fingerprint, From: store.CARetiring, To: store.CARetired}}, Now: T0}); err != nil {
			t.Fatal(err)
		}
		c = NewCertificate("spiffe://example.org/c", T0)
		c.Issuer = retiring.KeyID
		err = e.s.RecordIssuance(e.ctx, NewIssuance(c, ""))
		wantErr(t, err, store.ErrIssuerInactive, "store: record issuance "+c.Serial+": intermediate "+retiring.KeyID+" is retired: issuer may not sign")
	}},
	{"Invalid", func(t *testing.T, e *env) {
		good := NewCACert(store.CAKindRoot, store.CAActive, 1)
		const prefix = "store: CA change: "
		for _, tc := range []struct {
			name string
			ch   store.CAChange
			want string
		}{
			{"no time", store.CAChange{Insert: []store.CACert{good}}, prefix + "now is not set"},
			{"empty", store.CAChange{Now: T0}, prefix + "nothing to change"},
			{"bad kind", store.CAChange{Insert: []store.CACert{func() store.CACert { c := good; c.Kind = "leaf"; return c }()}, Now: T0},
				prefix + "CA certificate " + good.Fingerprint + `: unknown kind "leaf"`},
			{"bad state", store.CAChange{Insert: []store.CACert{func() store.CACert { c := good; c.State = "on"; return c }()}, Now: T0},
				prefix + "CA certificate " + good.Fingerprint + `: unknown state "on"`},
			{"no key", store.CAChange{Insert: []store.CACert{func() store.CACert { c := good; c.KeyURI = ""; return c }()}, Now: T0},
				prefix + "CA certificate " + good.Fingerprint + ": no key URI"},
			{"bad fingerprint", store.CAChange{Insert: []store.CACert{func() store.CACert { c := good; c.Fingerprint = "x"; return c }()}, Now: T0},
				prefix + `CA fingerprint "x" is not lowercase hex SHA-256`},
			{"revoked without time", store.CAChange{Update: []store.CAUpdate{{Fingerprint: good.Fingerprint, From: store.CAActive, To: store.CARevoked}}, Now: T0},
				prefix + "CA certificate " + good.Fingerprint + ": revoked at is not set"},
			{"rotation kind", store.CAChange{Rotation: &store.Rotation{Kind: "leaf", Phase: "x", StartedBy: Admin}, Now: T0},
				prefix + `rotation kind "leaf" is not intermediate or root`},
			{"rotation update without phase", store.CAChange{Rotation: &store.Rotation{ID: 3, Kind: store.RotateRoot, Phase: "x"}, Now: T0},
				prefix + "rotation 3: the phase it must be in is not given"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.s.ApplyCAChange(e.ctx, tc.ch)
				wantErr(t, err, nil, tc.want)
			})
		}
		// An update of an unknown certificate is a conflict, not a no-op.
		_, err := e.s.ApplyCAChange(e.ctx, store.CAChange{Update: []store.CAUpdate{{Fingerprint: good.Fingerprint, From: store.CAActive, To: store.CARetiring}}, Now: T0})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("update of an unknown CA: %v", err)
		}
		if len(e.cas())+len(e.rotations())+len(e.events()) != 0 {
			t.Error("an invalid change wrote something")
		}
	}},
}

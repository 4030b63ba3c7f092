package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/store"
)

var issuanceTests = []subtest{
	{"RoundTrip", func(t *testing.T, e *env) {
		c := NewCertificate("spiffe://example.org/svc/a", T0)
		c.RenewedFrom = "abc"
		c.Obtained = store.ObtainedRenew
		is := NewIssuance(c, "")
		if err := e.s.RecordIssuance(e.ctx, is); err != nil {
			t.Fatalf("RecordIssuance: %v", err)
		}
		got, err := e.s.GetCertificate(e.ctx, c.Serial)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		equalCert(t, got, c)
		recs := e.auditLog()
		if len(recs) != 1 || recs[0].Entry != is.Audit {
			t.Errorf("audit log = %+v, want one record of %+v", recs, is.Audit)
		}
	}},
	{"NotFound", func(t *testing.T, e *env) {
		_, err := e.s.GetCertificate(e.ctx, "1f")
		wantErr(t, err, store.ErrNotFound, "store: certificate 1f: not found")
	}},
	{"RedeemsToken", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		c := NewCertificate(tok.Identity, T0.Add(time.Minute))
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(c, tok.ID)); err != nil {
			t.Fatalf("RecordIssuance: %v", err)
		}
		got, err := e.s.GetToken(e.ctx, tok.ID)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if !got.RedeemedAt.Equal(c.IssuedAt) || got.Serial != c.Serial {
			t.Errorf("token redeemed at %v for %q, want %v for %q", got.RedeemedAt, got.Serial, c.IssuedAt, c.Serial)
		}
		gc, err := e.s.GetCertificate(e.ctx, c.Serial)
		if err != nil || gc.TokenID != tok.ID {
			t.Errorf("certificate token ID = %q (%v), want %q", gc.TokenID, err, tok.ID)
		}
		if n := len(e.auditLog()); n != 2 {
			t.Errorf("%d audit records, want 2", n)
		}
	}},
	{"UnknownToken", func(t *testing.T, e *env) {
		c := NewCertificate("spiffe://example.org/svc/a", T0)
		err := e.s.RecordIssuance(e.ctx, NewIssuance(c, "missing"))
		wantErr(t, err, store.ErrNotFound, "store: record issuance "+c.Serial+": token missing: not found")
		e.wantNothingIssued(c.Serial, 0)
	}},
	{"ReusedToken", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		first := NewCertificate(tok.Identity, T0)
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(first, tok.ID)); err != nil {
			t.Fatalf("RecordIssuance: %v", err)
		}
		second := NewCertificate(tok.Identity, T0.Add(time.Second))
		err := e.s.RecordIssuance(e.ctx, NewIssuance(second, tok.ID))
		wantErr(t, err, store.ErrTokenUsed, "store: record issuance "+second.Serial+": token "+tok.ID+": token already redeemed")
		e.wantNothingIssued(second.Serial, 2)
		if got, _ := e.s.GetToken(e.ctx, tok.ID); got.Serial != first.Serial {
			t.Errorf("token serial = %q, want the first %q", got.Serial, first.Serial)
		}
	}},
	{"ExpiredToken", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		// At ExpiresAt the token is already expired.
		for _, now := range []time.Time{tok.ExpiresAt, tok.ExpiresAt.Add(time.Hour)} {
			c := NewCertificate(tok.Identity, now)
			err := e.s.RecordIssuance(e.ctx, NewIssuance(c, tok.ID))
			wantErr(t, err, store.ErrTokenExpired, "store: record issuance "+c.Serial+": token "+tok.ID+": token expired")
			e.wantNothingIssued(c.Serial, 1)
		}
		got, err := e.s.GetToken(e.ctx, tok.ID)
		if err != nil || !got.RedeemedAt.IsZero() || got.Serial != "" {
			t.Errorf("token after expired use = %+v, %v; want unredeemed", got, err)
		}
		// One nanosecond before expiry it still works.
		c := NewCertificate(tok.Identity, tok.ExpiresAt.Add(-time.Nanosecond))
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(c, tok.ID)); err != nil {
			t.Errorf("RecordIssuance just before expiry: %v", err)
		}
	}},
	{"DuplicateSerial", func(t *testing.T, e *env) {
		first := e.issue("spiffe://example.org/svc/a", T0)
		tok := e.createToken("spiffe://example.org/svc/b", 15*time.Minute)
		dup := NewCertificate(tok.Identity, T0.Add(time.Second))
		dup.Serial = first.Serial
		err := e.s.RecordIssuance(e.ctx, NewIssuance(dup, tok.ID))
		wantErr(t, err, store.ErrDuplicateSerial, "store: record issuance "+first.Serial+": serial already exists")
		got, _ := e.s.GetToken(e.ctx, tok.ID)
		if !got.RedeemedAt.IsZero() {
			t.Errorf("token redeemed at %v by a failed issuance, want unredeemed", got.RedeemedAt)
		}
		gc, _ := e.s.GetCertificate(e.ctx, first.Serial)
		if gc.Identity != first.Identity {
			t.Errorf("certificate identity = %q, want the first %q", gc.Identity, first.Identity)
		}
		if n := len(e.auditLog()); n != 2 {
			t.Errorf("%d audit records, want 2 (issue + token)", n)
		}
	}},
	{"ConcurrentRedemption2", func(t *testing.T, e *env) { concurrentRedemption(t, e, 2, false) }},
	{"ConcurrentRedemption20", func(t *testing.T, e *env) { concurrentRedemption(t, e, 20, false) }},
	// With the secret hash and identity checked, as an enrollment's
	// (PostgreSQL redeems and reads them back in one statement).
	{"ConcurrentCheckedRedemption20", func(t *testing.T, e *env) { concurrentRedemption(t, e, 20, true) }},
	{"Invalid", invalidIssuances},
	{"CanceledContext", func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		c := NewCertificate("spiffe://example.org/svc/a", T0)
		err := e.s.RecordIssuance(ctx, NewIssuance(c, ""))
		wantErr(t, err, context.Canceled, "store: record issuance "+c.Serial+": context canceled")
		e.wantNothingIssued(c.Serial, 0)
	}},
}

// wantNothingIssued checks serial is not stored and the audit log has
// exactly audits records.
func (e *env) wantNothingIssued(serial string, audits int) {
	e.t.Helper()
	if _, err := e.s.GetCertificate(e.ctx, serial); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("GetCertificate(%s) after failed issuance: %v, want not found", serial, err)
	}
	if n := len(e.auditLog()); n != audits {
		e.t.Errorf("%d audit records, want %d", n, audits)
	}
}

// concurrentRedemption races n issuances for one token: exactly one wins.
// checked sets the token's secret hash and identity on each issuance.
func concurrentRedemption(t *testing.T, e *env, n int, checked bool) {
	tok := e.createToken("spiffe://example.org/svc/race", 15*time.Minute)
	errs := make([]error, n)
	certs := make([]store.Certificate, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		certs[i] = NewCertificate(tok.Identity, T0.Add(time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			is := NewIssuance(certs[i], tok.ID)
			if checked {
				is.TokenSecretHash, is.TokenIdentity = tok.SecretHash, tok.Identity
			}
			errs[i] = e.s.RecordIssuance(e.ctx, is)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("issuances %d and %d both redeemed the token", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrTokenUsed):
			t.Errorf("issuance %d: %v, want %v", i, err, store.ErrTokenUsed)
		}
	}
	if winner < 0 {
		t.Fatal("no issuance redeemed the token")
	}
	certsStored, err := e.s.ListCertificates(e.ctx, store.CertFilter{Identity: tok.Identity})
	if err != nil {
		t.Fatal(err)
	}
	if len(certsStored) != 1 || certsStored[0].Serial != certs[winner].Serial {
		t.Errorf("stored %d certificates, want exactly the winner's %s", len(certsStored), certs[winner].Serial)
	}
	got, _ := e.s.GetToken(e.ctx, tok.ID)
	if got.Serial != certs[winner].Serial {
		t.Errorf("token serial = %q, want the winner's %q", got.Serial, certs[winner].Serial)
	}
	if n := len(e.auditLog()); n != 2 {
		t.Errorf("%d audit records, want 2 (token + one issuance)", n)
	}
}

func invalidIssuances(t *testing.T, e *env) {
	base := NewCertificate("spiffe://example.org/svc/a", T0)
	base.Serial = "1a"
	prefix := "store: record issuance 1a: "
	for _, tc := range []struct {
		name  string
		edit  func(*store.Issuance)
		error string
	}{
		{"empty serial", func(is *store.Issuance) { is.Cert.Serial = "" }, `store: record issuance : serial "" is not lowercase hex without leading zeros`},
		{"upper-case serial", func(is *store.Issuance) { is.Cert.Serial = "1A" }, `store: record issuance 1A: serial "1A" is not lowercase hex without leading zeros`},
		{"leading zero", func(is *store.Issuance) { is.Cert.Serial = "01a" }, `store: record issuance 01a: serial "01a" is not lowercase hex without leading zeros`},
		{"no identity", func(is *store.Issuance) { is.Cert.Identity = "" }, prefix + "certificate identity is empty"},
		{"bad fingerprint", func(is *store.Issuance) { is.Cert.Fingerprint = "abc" }, prefix + `fingerprint "abc" is not lowercase hex SHA-256`},
		{"no key type", func(is *store.Issuance) { is.Cert.KeyType = "" }, prefix + "certificate key type is empty"},
		{"no DER", func(is *store.Issuance) { is.Cert.DER = nil }, prefix + "certificate DER is empty"},
		{"no issuer", func(is *store.Issuance) { is.Cert.Issuer = "" }, prefix + `issuer "" is not a lowercase hex key ID`},
		{"issuer not hex", func(is *store.Issuance) { is.Cert.Issuer = "Z1" }, prefix + `issuer "Z1" is not a lowercase hex key ID`},
		{"unknown obtained", func(is *store.Issuance) { is.Cert.Obtained = "magic" }, prefix + `obtained "magic" is not one of init, enroll, renew, server, bootstrap`},
		{"no not after", func(is *store.Issuance) { is.Cert.NotAfter = time.Time{} }, prefix + "not after is not set"},
		{"inverted validity", func(is *store.Issuance) { is.Cert.NotAfter = is.Cert.NotBefore },
			prefix + "not after 2030-01-02T03:03:05Z is not after not before 2030-01-02T03:03:05Z"},
		{"other token", func(is *store.Issuance) { is.Cert.TokenID, is.TokenID = "a", "b" },
			prefix + `certificate token ID "a" is not the redeemed token "b"`},
		{"token without now", func(is *store.Issuance) { is.TokenID, is.Now = "b", time.Time{} }, prefix + "now is not set"},
		{"no audit", func(is *store.Issuance) { is.Audit.Action = "" }, prefix + "audit entry action is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := NewIssuance(base, "")
			tc.edit(&is)
			wantErr(t, e.s.RecordIssuance(e.ctx, is), nil, tc.error)
		})
	}
	if n := e.certCount(); n != 0 {
		t.Errorf("%d certificates stored by invalid issuances, want 0", n)
	}
	if n := len(e.auditLog()); n != 0 {
		t.Errorf("%d audit records, want 0", n)
	}
}

// identity returns a distinct identity per i.
func identity(i int) string { return fmt.Sprintf("spiffe://example.org/svc/%d", i) }

package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/store"
)

// checkedTests cover the checks RecordIssuance makes inside its
// transaction: the token's secret hash and identity
// (Issuance.TokenSecretHash, TokenIdentity) and the certificate a renewal
// renews (Issuance.RenewedFingerprint).
var checkedTests = []subtest{
	{"TokenMatches", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		c := NewCertificate(tok.Identity, T0.Add(time.Minute))
		is := NewIssuance(c, tok.ID)
		is.TokenSecretHash, is.TokenIdentity = tok.SecretHash, tok.Identity
		if err := e.s.RecordIssuance(e.ctx, is); err != nil {
			t.Fatalf("RecordIssuance: %v", err)
		}
		if got, _ := e.s.GetToken(e.ctx, tok.ID); got.Serial != c.Serial {
			t.Errorf("token redeemed for %q, want %q", got.Serial, c.Serial)
		}
	}},
	{"TokenMismatch", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		wrong := bytes.Clone(tok.SecretHash)
		wrong[31] ^= 1
		for _, tc := range []struct {
			name, identity string
			hash           []byte
		}{
			{"secret", tok.Identity, wrong},
			{"identity", "spiffe://example.org/admin/root", tok.SecretHash},
		} {
			c := NewCertificate(tc.identity, T0.Add(time.Minute))
			is := NewIssuance(c, tok.ID)
			is.TokenSecretHash, is.TokenIdentity = tc.hash, tc.identity
			err := e.s.RecordIssuance(e.ctx, is)
			wantErr(t, err, store.ErrTokenMismatch, "store: record issuance "+c.Serial+": token "+tok.ID+": token secret or identity does not match")
			e.wantNothingIssued(c.Serial, 1)
		}
		if got, _ := e.s.GetToken(e.ctx, tok.ID); !got.RedeemedAt.IsZero() {
			t.Errorf("token redeemed by a mismatched issuance: %+v", got)
		}
		// Unknown token: not found, as without the check.
		c := NewCertificate(tok.Identity, T0.Add(time.Minute))
		is := NewIssuance(c, "missing")
		is.TokenSecretHash, is.TokenIdentity = tok.SecretHash, tok.Identity
		wantErr(t, e.s.RecordIssuance(e.ctx, is), store.ErrNotFound, "store: record issuance "+c.Serial+": token missing: not found")
		// A used token with the right secret is used, not a mismatch.
		first := NewIssuance(NewCertificate(tok.Identity, T0.Add(time.Minute)), tok.ID)
		if err := e.s.RecordIssuance(e.ctx, first); err != nil {
			t.Fatal(err)
		}
		again := NewIssuance(NewCertificate(tok.Identity, T0.Add(2*time.Minute)), tok.ID)
		again.TokenSecretHash, again.TokenIdentity = tok.SecretHash, tok.Identity
		wantErr(t, e.s.RecordIssuance(e.ctx, again), store.ErrTokenUsed,
			"store: record issuance "+again.Cert.Serial+": token "+tok.ID+": token already redeemed")
	}},
	{"TokenPartlyChecked", func(t *testing.T, e *env) {
		// Only the secret hash, or only the identity, presented: the other
		// is not compared.
		wrongHash := func(tok store.Token) []byte {
			h := bytes.Clone(tok.SecretHash)
			h[7] ^= 1
			return h
		}
		for _, tc := range []struct {
			name     string
			hash     func(store.Token) []byte
			identity func(store.Token) string
			wantErr  bool
		}{
			{"hash", func(tok store.Token) []byte { return tok.SecretHash }, func(store.Token) string { return "" }, false},
			{"identity", func(store.Token) []byte { return nil }, func(tok store.Token) string { return tok.Identity }, false},
			{"wrong hash", wrongHash, func(store.Token) string { return "" }, true},
			{"wrong identity", func(store.Token) []byte { return nil }, func(store.Token) string { return "spiffe://example.org/svc/other" }, true},
		} {
			tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
			is := NewIssuance(NewCertificate(tok.Identity, T0.Add(time.Minute)), tok.ID)
			is.TokenSecretHash, is.TokenIdentity = tc.hash(tok), tc.identity(tok)
			err := e.s.RecordIssuance(e.ctx, is)
			got, _ := e.s.GetToken(e.ctx, tok.ID)
			if !tc.wantErr {
				if err != nil || got.Serial != is.Cert.Serial {
					t.Errorf("%s: %v, token redeemed for %q; want redeemed for %q", tc.name, err, got.Serial, is.Cert.Serial)
				}
				continue
			}
			wantErr(t, err, store.ErrTokenMismatch, "store: record issuance "+is.Cert.Serial+": token "+tok.ID+": token secret or identity does not match")
			if !got.RedeemedAt.IsZero() {
				t.Errorf("%s: token redeemed by a mismatched issuance: %+v", tc.name, got)
			}
		}
		// A presented hash that is empty is refused before any statement,
		// and the token stays unredeemed: stTokenRedeemMatching takes a
		// NULL hash for "not presented", and a driver may bind an empty
		// blob as NULL.
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		is := NewIssuance(NewCertificate(tok.Identity, T0.Add(time.Minute)), tok.ID)
		is.TokenSecretHash = []byte{}
		err := e.s.RecordIssuance(e.ctx, is)
		if want := "store: record issuance " + is.Cert.Serial + ": token secret hash is 0 bytes, want 32 (SHA-256)"; err == nil || err.Error() != want {
			t.Errorf("empty hash: %v, want %s", err, want)
		}
		if got, _ := e.s.GetToken(e.ctx, tok.ID); !got.RedeemedAt.IsZero() {
			t.Errorf("empty hash: token redeemed: %+v", got)
		}
	}},
	{"TokenMismatchBeforeState", func(t *testing.T, e *env) {
		// A wrong secret learns nothing of the token's state: a used or
		// an expired token answers a mismatch, as an unused one does.
		used := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		if err := e.s.RecordIssuance(e.ctx, NewIssuance(NewCertificate(used.Identity, T0.Add(time.Minute)), used.ID)); err != nil {
			t.Fatal(err)
		}
		expired := e.createToken("spiffe://example.org/svc/b", time.Minute)
		for _, tc := range []struct {
			tok store.Token
			now time.Time
		}{{used, T0.Add(2 * time.Minute)}, {expired, T0.Add(time.Hour)}} {
			wrong := bytes.Clone(tc.tok.SecretHash)
			wrong[0] ^= 1
			is := NewIssuance(NewCertificate(tc.tok.Identity, tc.now), tc.tok.ID)
			is.TokenSecretHash, is.TokenIdentity = wrong, tc.tok.Identity
			wantErr(t, e.s.RecordIssuance(e.ctx, is), store.ErrTokenMismatch,
				"store: record issuance "+is.Cert.Serial+": token "+tc.tok.ID+": token secret or identity does not match")
		}
		is := NewIssuance(NewCertificate(expired.Identity, T0.Add(time.Hour)), expired.ID)
		is.TokenSecretHash, is.TokenIdentity = expired.SecretHash, expired.Identity
		wantErr(t, e.s.RecordIssuance(e.ctx, is), store.ErrTokenExpired,
			"store: record issuance "+is.Cert.Serial+": token "+expired.ID+": token expired")
		e.wantNothingIssued(is.Cert.Serial, 3)
	}},
	{"TokenMismatchInBatch", func(t *testing.T, e *env) {
		// Issuances with the right secret and with a wrong one, sent
		// together so that the writer batches them: the mismatched ones
		// fail and their redemption is rolled back with them (the token
		// stays unused), the others commit.
		const n = 16
		target := e.createToken("spiffe://example.org/svc/target", 15*time.Minute)
		wrong := bytes.Clone(target.SecretHash)
		wrong[5] ^= 1
		toks := make([]store.Token, n)
		for i := range toks {
			toks[i] = e.createToken("spiffe://example.org/svc/ok", 15*time.Minute)
		}
		errs := make([]error, 2*n)
		var wg sync.WaitGroup
		for i := range 2 * n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, hash := target, wrong
				if i%2 == 0 {
					tok = toks[i/2]
					hash = tok.SecretHash
				}
				is := NewIssuance(NewCertificate(tok.Identity, T0.Add(time.Minute)), tok.ID)
				is.TokenSecretHash, is.TokenIdentity = hash, tok.Identity
				errs[i] = e.s.RecordIssuance(e.ctx, is)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if i%2 == 0 && err != nil {
				t.Errorf("issuance %d with the right secret: %v", i, err)
			}
			if i%2 == 1 && !errors.Is(err, store.ErrTokenMismatch) {
				t.Errorf("issuance %d with a wrong secret: %v, want a mismatch", i, err)
			}
		}
		if got, _ := e.s.GetToken(e.ctx, target.ID); !got.RedeemedAt.IsZero() || got.Serial != "" {
			t.Errorf("token redeemed by mismatched issuances: %+v", got)
		}
		for _, tok := range toks {
			if got, _ := e.s.GetToken(e.ctx, tok.ID); got.RedeemedAt.IsZero() {
				t.Errorf("token %s not redeemed", tok.ID)
			}
		}
		if n2 := e.certCount(); n2 != n {
			t.Errorf("%d certificates stored, want %d", n2, n)
		}
		// The target token still works with its secret.
		is := NewIssuance(NewCertificate(target.Identity, T0.Add(2*time.Minute)), target.ID)
		is.TokenSecretHash, is.TokenIdentity = target.SecretHash, target.Identity
		if err := e.s.RecordIssuance(e.ctx, is); err != nil {
			t.Fatalf("issuance with the right secret after the mismatches: %v", err)
		}
		e.auditLog()
	}},
	{"RenewalChecked", func(t *testing.T, e *env) {
		cur := e.issue("spiffe://example.org/svc/a", T0)
		renewal := func(from store.Certificate, fingerprint string, now time.Time) store.Issuance {
			c := NewCertificate(from.Identity, now)
			c.Obtained, c.RenewedFrom = store.ObtainedRenew, from.Serial
			is := NewIssuance(c, "")
			is.RenewedFingerprint = fingerprint
			return is
		}
		ok := renewal(cur, cur.Fingerprint, T0.Add(time.Hour))
		if err := e.s.RecordIssuance(e.ctx, ok); err != nil {
			t.Fatalf("renewal of a current certificate: %v", err)
		}
		audits := 2
		other := NewCertificate(cur.Identity, T0)
		for _, tc := range []struct {
			name string
			is   store.Issuance
			err  error
			msg  string
		}{
			{"unknown", renewal(other, other.Fingerprint, T0.Add(time.Hour)), store.ErrNotFound, ": renewed certificate " + other.Serial + ": not found"},
			{"other fingerprint", renewal(cur, other.Fingerprint, T0.Add(time.Hour)), store.ErrNotFound, ": renewed certificate " + cur.Serial + ": fingerprint differs: not found"},
			{"expired", renewal(cur, cur.Fingerprint, cur.NotAfter), store.ErrExpired, ": renewed certificate " + cur.Serial + ": certificate expired"},
		} {
			err := e.s.RecordIssuance(e.ctx, tc.is)
			wantErr(t, err, tc.err, "store: record issuance "+tc.is.Cert.Serial+tc.msg)
			e.wantNothingIssued(tc.is.Cert.Serial, audits)
		}
		e.revoke(store.RevokeRequest{Serial: cur.Serial, Reason: 1, Now: T0.Add(2 * time.Hour)})
		audits++
		late := renewal(cur, cur.Fingerprint, T0.Add(3*time.Hour))
		wantErr(t, e.s.RecordIssuance(e.ctx, late), store.ErrRevoked, "store: record issuance "+late.Cert.Serial+": renewed certificate "+cur.Serial+": certificate revoked")
		e.wantNothingIssued(late.Cert.Serial, audits)
	}},
	{"InvalidChecks", func(t *testing.T, e *env) {
		c := NewCertificate("spiffe://example.org/svc/a", T0)
		c.Serial = "1a"
		prefix := "store: record issuance 1a: "
		for _, tc := range []struct {
			edit func(*store.Issuance)
			msg  string
		}{
			{func(is *store.Issuance) { is.TokenIdentity = c.Identity }, "token secret hash or identity given without a token ID"},
			{func(is *store.Issuance) { is.TokenID, is.Cert.TokenID, is.TokenSecretHash = "b", "b", []byte{1} }, "token secret hash is 1 bytes, want 32 (SHA-256)"},
			{func(is *store.Issuance) { is.RenewedFingerprint = c.Fingerprint }, "renewed fingerprint given without the renewed serial"},
			{func(is *store.Issuance) { is.Cert.RenewedFrom, is.RenewedFingerprint = "1b", "XY" }, `renewed fingerprint "XY" is not lowercase hex SHA-256`},
			{func(is *store.Issuance) {
				is.Cert.RenewedFrom, is.RenewedFingerprint, is.Now = "1b", c.Fingerprint, time.Time{}
			}, "now is not set"},
		} {
			is := NewIssuance(c, "")
			tc.edit(&is)
			wantErr(t, e.s.RecordIssuance(e.ctx, is), nil, prefix+tc.msg)
		}
		if n := e.certCount(); n != 0 {
			t.Errorf("%d certificates stored by invalid issuances", n)
		}
	}},
}

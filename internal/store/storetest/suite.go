package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

// Run runs the conformance suite against the backend open returns. open
// is called once per subtest and must return a fresh, empty store; Run
// closes it (open may also register its own cleanup: Close is idempotent).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Tokens", tokenTests},
		{"Issuance", issuanceTests},
		{"IssuanceChecked", checkedTests},
		{"Revoke", revokeTests},
		{"Events", eventTests},
		{"Audit", auditTests},
		{"List", listTests},
		{"Lifecycle", lifecycleTests},
		{"CA", caTests},
		{"Usage", usageTests},
		{"Roles", roleTests},
		{"LegacyKeys", legacyKeyTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, st := range g.tests {
				t.Run(st.name, func(t *testing.T) {
					st.fn(t, newEnv(t, open))
				})
			}
		})
	}
}

type subtest struct {
	name string
	fn   func(t *testing.T, e *env)
}

// T0 is the suite's "now". It has a nanosecond part, so a backend that
// rounds times fails.
var T0 = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

// Admin is the actor the suite records actions for.
const Admin = "spiffe://example.org/admin/alice"

type env struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
}

func newEnv(t *testing.T, open func(t *testing.T) store.Store) *env {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, s: s, ctx: context.Background()}
}

// NewSerial returns a random 128-bit serial in the store's spelling.
func NewSerial() string {
	b := make([]byte, 16)
	for {
		rand.Read(b)
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n.Text(16)
		}
	}
}

// NewCertificate returns a certificate record for identity issued at
// issued, valid for 24 hours, with random DER bytes (the store does not
// parse them).
func NewCertificate(identity string, issued time.Time) store.Certificate {
	der := make([]byte, 400)
	rand.Read(der)
	sum := sha256.Sum256(der)
	return store.Certificate{
		Serial:      NewSerial(),
		Identity:    identity,
		CommonName:  "test " + identity,
		Fingerprint: hex.EncodeToString(sum[:]),
		NotBefore:   issued.Add(-time.Minute),
		NotAfter:    issued.Add(24 * time.Hour),
		KeyType:     "ecdsa-p256",
		Obtained:    store.ObtainedEnroll,
		IssuedAt:    issued,
		DER:         der,
		Issuer:      Issuer,
	}
}

// Issuer is the issuer key ID of the certificates NewCertificate makes.
const Issuer = "5a1e"

// NewIssuance wraps c into an Issuance at c.IssuedAt, redeeming tokenID if
// it is not empty, with its audit entry.
func NewIssuance(c store.Certificate, tokenID string) store.Issuance {
	return store.Issuance{
		Cert:    c,
		TokenID: tokenID,
		Now:     c.IssuedAt,
		Audit: audit.Entry{Time: c.IssuedAt, Actor: c.Identity, Action: audit.ActionIssue, Subject: c.Serial,
			Detail: fmt.Sprintf(`{"identity":%q}`, c.Identity)},
	}
}

// NewToken returns an unredeemed token for identity, created at created
// and valid for ttl.
func NewToken(identity string, created time.Time, ttl time.Duration) store.Token {
	id := make([]byte, 12)
	rand.Read(id)
	secret := make([]byte, 32)
	rand.Read(secret)
	sum := sha256.Sum256(secret)
	return store.Token{
		ID:         hex.EncodeToString(id),
		SecretHash: sum[:],
		Identity:   identity,
		CreatedBy:  Admin,
		CreatedAt:  created,
		ExpiresAt:  created.Add(ttl),
	}
}

// TokenEntry is the audit entry of creating tok.
func TokenEntry(tok store.Token) audit.Entry {
	return audit.Entry{Time: tok.CreatedAt, Actor: tok.CreatedBy, Action: audit.ActionTokenCreate, Subject: tok.ID}
}

func (e *env) createToken(identity string, ttl time.Duration) store.Token {
	e.t.Helper()
	tok := NewToken(identity, T0, ttl)
	if err := e.s.CreateToken(e.ctx, tok, TokenEntry(tok)); err != nil {
		e.t.Fatalf("CreateToken: %v", err)
	}
	return tok
}

func (e *env) issue(identity string, issued time.Time) store.Certificate {
	e.t.Helper()
	c := NewCertificate(identity, issued)
	if err := e.s.RecordIssuance(e.ctx, NewIssuance(c, "")); err != nil {
		e.t.Fatalf("RecordIssuance: %v", err)
	}
	return c
}

func (e *env) revoke(req store.RevokeRequest) []store.Revocation {
	e.t.Helper()
	if req.By == "" {
		req.By = Admin
	}
	if req.Now.IsZero() {
		req.Now = T0.Add(time.Hour)
	}
	out, err := e.s.Revoke(e.ctx, req)
	if err != nil {
		e.t.Fatalf("Revoke(%+v): %v", req, err)
	}
	return out
}

func (e *env) events() []store.Event {
	e.t.Helper()
	evs, err := e.s.Events(e.ctx, 0, 0)
	if err != nil {
		e.t.Fatalf("Events: %v", err)
	}
	return evs
}

// auditLog returns every audit record after checking the chain verifies.
func (e *env) auditLog() []audit.Record {
	e.t.Helper()
	recs, err := e.s.AuditRecords(e.ctx, 0, 0)
	if err != nil {
		e.t.Fatalf("AuditRecords: %v", err)
	}
	var v audit.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			e.t.Fatalf("audit chain: %v", err)
		}
	}
	return recs
}

func (e *env) certCount() int {
	e.t.Helper()
	certs, err := e.s.ListCertificates(e.ctx, store.CertFilter{})
	if err != nil {
		e.t.Fatalf("ListCertificates: %v", err)
	}
	return len(certs)
}

// wantErr checks that err is target and reads exactly msg.
func wantErr(t *testing.T, err, target error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %q", msg)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
	if err.Error() != msg {
		t.Errorf("error = %q\n         want %q", err, msg)
	}
}

// equalCert compares two certificate records field by field, times with
// Equal.
func equalCert(t *testing.T, got, want store.Certificate) {
	t.Helper()
	for _, tc := range []struct {
		name      string
		got, want time.Time
	}{{"NotBefore", got.NotBefore, want.NotBefore}, {"NotAfter", got.NotAfter, want.NotAfter}, {"IssuedAt", got.IssuedAt, want.IssuedAt}} {
		if !tc.got.Equal(tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
		if tc.got.Location() != time.UTC {
			t.Errorf("%s location = %v, want UTC", tc.name, tc.got.Location())
		}
	}
	got.NotBefore, got.NotAfter, got.IssuedAt = want.NotBefore, want.NotAfter, want.IssuedAt
	if got.Revocation != nil && want.Revocation != nil {
		if !got.Revocation.RevokedAt.Equal(want.Revocation.RevokedAt) {
			t.Errorf("RevokedAt = %v, want %v", got.Revocation.RevokedAt, want.Revocation.RevokedAt)
		}
		r := *got.Revocation
		r.RevokedAt = want.Revocation.RevokedAt
		got.Revocation = &r
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("certificate =\n%+v\nwant\n%+v", got, want)
	}
}

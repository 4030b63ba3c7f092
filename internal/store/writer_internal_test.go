package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

func testIssuance(serial string) Issuance {
	der := make([]byte, 300)
	rand.Read(der)
	sum := sha256.Sum256(der)
	now := time.Unix(1900000000, 0).UTC()
	c := Certificate{Serial: serial, Issuer: "ab", Identity: "spiffe://example.org/svc/" + serial, CommonName: serial,
		Fingerprint: hex.EncodeToString(sum[:]), NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyType: "ecdsa-p256", Obtained: ObtainedEnroll, IssuedAt: now, DER: der}
	return Issuance{Cert: c, Now: now, Audit: audit.Entry{Time: now, Actor: "test", Action: audit.ActionIssue, Subject: serial}}
}

// holdWriter makes the writer hold its next batch (one audit record) until
// release is called, so that what is queued meanwhile forms one batch; held
// receives the held operation's answer.
func holdWriter(t *testing.T, s *SQL) (release func(), held <-chan error) {
	t.Helper()
	entered, rel := make(chan struct{}), make(chan struct{})
	first := true
	hook := func() {
		if first {
			first = false
			close(entered)
			<-rel
		}
	}
	s.beforeBatch.Store(&hook)
	h := make(chan error, 1)
	go func() { _, err := s.AppendAudit(context.Background(), entry("hold")); h <- err }()
	<-entered
	return func() { close(rel) }, h
}

// A batch in which one operation fails is run again with a savepoint
// around each operation: the others commit, the failing one writes
// nothing, and the audit chain has no gap.
func TestBatchWithFailingOperation(t *testing.T) {
	s, _ := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	if err := s.RecordIssuance(ctx, testIssuance("a1")); err != nil {
		t.Fatal(err)
	}
	release, held := holdWriter(t, s) // the next three queue up together

	serials := []string{"b1", "a1", "c1"} // a1 is already recorded
	errs := make([]chan error, len(serials))
	for i, serial := range serials {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- s.RecordIssuance(ctx, testIssuance(serial)) }()
		for len(s.queue) < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, serial := range serials {
		err := <-errs[i]
		if serial == "a1" {
			if !errors.Is(err, ErrDuplicateSerial) {
				t.Errorf("duplicate serial: %v, want %v", err, ErrDuplicateSerial)
			}
			continue
		}
		if err != nil {
			t.Errorf("issuance %s in the same batch as a failing one: %v", serial, err)
		}
	}
	recs, err := s.AuditRecords(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var v audit.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(recs) != 4 {
		t.Errorf("%d audit records, want 4 (a1, hold, b1, c1)", len(recs))
	}
	certs, err := s.ListCertificates(ctx, CertFilter{})
	if err != nil || len(certs) != 3 {
		t.Errorf("%d certificates, %v; want 3", len(certs), err)
	}
}

// The role grants an issuance's gateway-role check reads once per
// transaction are read again after a grant in the same batch: an issuance
// queued behind GrantRole sees the grant, one queued before it does not.
func TestRoleCheckAfterGrantInSameBatch(t *testing.T) {
	s, _ := openTemp(t, sqliteBusyTimeout)
	ctx := context.Background()
	release, held := holdWriter(t, s) // the next three queue up together

	yes := true
	is := func(serial string) Issuance {
		is := testIssuance(serial)
		is.Cert.Identity = "spiffe://example.org/gw/" + serial
		is.GatewayRole = &yes
		return is
	}
	grant := roles.Grant{Role: roles.Gateway, Holder: "spiffe://example.org/gw/*", GrantedBy: "test", GrantedAt: time.Unix(1900000000, 0)}
	ops := []func() error{
		func() error { return s.RecordIssuance(ctx, is("a1")) },
		func() error { return s.GrantRole(ctx, grant) },
		func() error { return s.RecordIssuance(ctx, is("b1")) },
	}
	errs := make([]chan error, len(ops))
	for i, op := range ops {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- op() }()
		for len(s.queue) < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-errs[0]; !errors.Is(err, ErrRolesChanged) {
		t.Errorf("gateway issuance before the grant: %v, want %v", err, ErrRolesChanged)
	}
	if err := <-errs[1]; err != nil {
		t.Errorf("grant: %v", err)
	}
	if err := <-errs[2]; err != nil {
		t.Errorf("gateway issuance after the grant in the same batch: %v", err)
	}
}

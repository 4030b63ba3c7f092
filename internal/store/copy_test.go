package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// populate fills s with a bit of everything: tokens unused, redeemed and
// expired, certificates enrolled and renewed, revocations by serial and by
// identity, and audit records of every kind.
func populate(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("spiffe://example.org/svc/%d", i)
		tok := storetest.NewToken(id, storetest.T0, time.Hour)
		if err := s.CreateToken(ctx, tok, storetest.TokenEntry(tok)); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			continue // left unused
		}
		c := storetest.NewCertificate(id, storetest.T0.Add(time.Duration(i)*time.Second))
		if err := s.RecordIssuance(ctx, storetest.NewIssuance(c, tok.ID)); err != nil {
			t.Fatal(err)
		}
		r := storetest.NewCertificate(id, storetest.T0.Add(time.Hour))
		r.Obtained, r.RenewedFrom = store.ObtainedRenew, c.Serial
		if err := s.RecordIssuance(ctx, storetest.NewIssuance(r, "")); err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 0:
			_, err := s.Revoke(ctx, store.RevokeRequest{Serial: c.Serial, Reason: 1, By: storetest.Admin, Now: storetest.T0.Add(2 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		case 1:
			_, err := s.Revoke(ctx, store.RevokeRequest{Identity: id, Reason: 4, By: storetest.Admin, Now: storetest.T0.Add(2 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.AppendAudit(ctx, audit.Entry{Time: storetest.T0, Actor: storetest.Admin, Action: audit.ActionInit, Subject: "example.org", Detail: `{"x":1}`}); err != nil {
		t.Fatal(err)
	}
}

// everything reads all a store holds through the Store interface.
type everything struct {
	certs  []store.Certificate
	tokens []store.Token
	events []store.Event
	audit  []audit.Record
}

func readAll(t *testing.T, s store.Store) everything {
	t.Helper()
	ctx := context.Background()
	var e everything
	var err error
	if e.certs, err = s.ListCertificates(ctx, store.CertFilter{}); err != nil {
		t.Fatal(err)
	}
	if e.events, err = s.Events(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if e.audit, err = s.AuditRecords(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.audit {
		if r.Action != audit.ActionTokenCreate {
			continue
		}
		tok, err := s.GetToken(ctx, r.Subject)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens = append(e.tokens, tok)
	}
	return e
}

type opener struct {
	name string
	open func(t *testing.T) *store.SQL
}

func sqliteOpener() opener {
	return opener{"sqlite", func(t *testing.T) *store.SQL { return storetest.NewSQLite(t) }}
}

func postgresOpener() opener {
	return opener{"postgres", func(t *testing.T) *store.SQL { return openPostgres(t) }}
}

// Copy between every pair of backends yields the same certificates (DER
// included), revocations, tokens (hash and redemption), events (same
// positions) and audit records (same seq and hashes), and the target
// carries on from there: the next event and audit record follow the
// copied ones.
func TestCopy(t *testing.T) {
	pairs := [][2]opener{{sqliteOpener(), sqliteOpener()}, {sqliteOpener(), postgresOpener()}, {postgresOpener(), sqliteOpener()}}
	for _, p := range pairs {
		t.Run(p[0].name+"-to-"+p[1].name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := p[0].open(t), p[1].open(t)
			populate(t, src, 12)
			inv, err := store.Copy(ctx, dst, src)
			if err != nil {
				t.Fatal(err)
			}
			want := readAll(t, src)
			if inv.Certificates != int64(len(want.certs)) || inv.Events != int64(len(want.events)) || inv.AuditRecords != int64(len(want.audit)) {
				t.Fatalf("Copy returned %s, the source holds %d certificates, %d events, %d audit records", inv, len(want.certs), len(want.events), len(want.audit))
			}
			if inv.Certificates != 18 || inv.Revocations != 9 || inv.Tokens != 12 || inv.Events != 9 || inv.AuditRecords != 40 {
				t.Fatalf("Copy returned %s", inv)
			}
			got := readAll(t, dst)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the target differs from the source:\n got %+v\nwant %+v", got, want)
			}
			dinv, err := dst.Inventory(ctx)
			if err != nil || !dinv.Equal(inv) {
				t.Fatalf("target inventory %s, %v; want %s", dinv, err, inv)
			}
			if n, head, err := store.VerifyAudit(ctx, dst); err != nil || n != inv.AuditRecords || string(head) != string(inv.AuditHead) {
				t.Fatalf("VerifyAudit on the target = %d, %x, %v", n, head, err)
			}

			// The target carries on.
			var used, unused store.Token
			for _, tok := range want.tokens {
				if tok.Serial != "" {
					used = tok
				} else {
					unused = tok
				}
			}
			c := storetest.NewCertificate(used.Identity, storetest.T0.Add(3*time.Hour))
			if err := dst.RecordIssuance(ctx, storetest.NewIssuance(c, used.ID)); !errors.Is(err, store.ErrTokenUsed) {
				t.Fatalf("redeeming a token redeemed before the copy: %v, want %v", err, store.ErrTokenUsed)
			}
			c = storetest.NewCertificate(unused.Identity, storetest.T0.Add(30*time.Minute))
			if err := dst.RecordIssuance(ctx, storetest.NewIssuance(c, unused.ID)); err != nil {
				t.Fatalf("redeeming a token unused before the copy: %v", err)
			}
			revs, err := dst.Revoke(ctx, store.RevokeRequest{Serial: c.Serial, Reason: 1, By: storetest.Admin, Now: storetest.T0.Add(4 * time.Hour)})
			if err != nil || len(revs) != 1 {
				t.Fatal(revs, err)
			}
			evs, err := dst.Events(ctx, inv.LastPosition, 0)
			if err != nil || len(evs) != 1 || evs[0].Position != inv.LastPosition+1 {
				t.Fatalf("event after the copied ones: %+v %v, want position %d", evs, err, inv.LastPosition+1)
			}
			if n, _, err := store.VerifyAudit(ctx, dst); err != nil || n != inv.AuditRecords+2 {
				t.Fatalf("audit chain after new writes on the target: %d records, %v", n, err)
			}
		})
	}
}

// A target that holds anything is refused, and left exactly as it was.
func TestCopyRefusesNonEmptyTarget(t *testing.T) {
	for _, o := range []opener{sqliteOpener(), postgresOpener()} {
		t.Run(o.name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := storetest.NewSQLite(t), o.open(t)
			populate(t, src, 4)
			tok := storetest.NewToken("spiffe://example.org/svc/there", storetest.T0, time.Hour)
			if err := dst.CreateToken(ctx, tok, storetest.TokenEntry(tok)); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, dst)
			_, err := store.Copy(ctx, dst, src)
			inv, _ := dst.Inventory(ctx)
			want := fmt.Sprintf("store: copy: target store is not empty: it holds 0 certificates, 0 revocations, 1 tokens, 0 events (last position 0), 1 audit records (head 1 %x); copy only into a new database", inv.AuditHead)
			if !errors.Is(err, store.ErrNotEmpty) || err.Error() != want {
				t.Fatalf("Copy into a non-empty store: %v\nwant %s", err, want)
			}
			if after := readAll(t, dst); !reflect.DeepEqual(after, before) {
				t.Fatal("the refused target changed")
			}
		})
	}
}

// A source whose audit chain was tampered with is not copied: the chain is
// verified on the target before the commit, and nothing is written.
func TestCopyRefusesBrokenChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "src.db")
	src, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	populate(t, src, 4)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE audit SET detail = '{"edited":true}' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	dst := storetest.NewSQLite(t)
	_, err = store.Copy(ctx, dst, src)
	const want = "store: copy: the audit chain does not verify on the target, nothing copied: audit: record 3: hash mismatch: contents changed after it was written (stored "
	if !errors.Is(err, audit.ErrBroken) || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Fatalf("Copy of a tampered log: %v\nwant %s…", err, want)
	}
	if inv, err := dst.Inventory(ctx); err != nil || !inv.Empty() {
		t.Fatalf("target after a refused copy: %s, %v; want empty", inv, err)
	}
}

// A store larger than one INSERT batch (333 certificates, 500 audit
// records) is copied whole.
func TestCopyManyBatches(t *testing.T) {
	ctx := context.Background()
	src, dst := storetest.NewSQLite(t), openPostgres(t)
	populate(t, src, 240)
	inv, err := store.Copy(ctx, dst, src)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Certificates != 360 || inv.AuditRecords != 781 {
		t.Fatalf("Copy returned %s", inv)
	}
	if got, want := readAll(t, dst), readAll(t, src); !reflect.DeepEqual(got, want) {
		t.Fatal("the target differs from the source")
	}
}

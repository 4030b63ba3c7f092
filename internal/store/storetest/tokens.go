package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
)

var tokenTests = []subtest{
	{"RoundTrip", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", 15*time.Minute)
		got, err := e.s.GetToken(e.ctx, tok.ID)
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if !got.CreatedAt.Equal(tok.CreatedAt) || !got.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Errorf("times = %v, %v; want %v, %v", got.CreatedAt, got.ExpiresAt, tok.CreatedAt, tok.ExpiresAt)
		}
		got.CreatedAt, got.ExpiresAt = tok.CreatedAt, tok.ExpiresAt
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("GetToken = %+v, want %+v", got, tok)
		}
		recs := e.auditLog()
		if len(recs) != 1 || recs[0].Entry != TokenEntry(tok) {
			t.Errorf("audit log = %+v, want one record of %+v", recs, TokenEntry(tok))
		}
	}},
	{"NotFound", func(t *testing.T, e *env) {
		_, err := e.s.GetToken(e.ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "store: token nope: not found")
	}},
	{"Duplicate", func(t *testing.T, e *env) {
		tok := e.createToken("spiffe://example.org/svc/a", time.Minute)
		again := NewToken("spiffe://example.org/svc/b", T0, time.Minute)
		again.ID = tok.ID
		err := e.s.CreateToken(e.ctx, again, TokenEntry(again))
		wantErr(t, err, store.ErrDuplicateToken, "store: create token "+tok.ID+": token ID already exists")
		got, err := e.s.GetToken(e.ctx, tok.ID)
		if err != nil || got.Identity != tok.Identity {
			t.Errorf("GetToken = %+v, %v; want the first token kept", got, err)
		}
		if n := len(e.auditLog()); n != 1 {
			t.Errorf("%d audit records, want 1 (the failed create must not be audited)", n)
		}
	}},
	{"Invalid", func(t *testing.T, e *env) {
		good := NewToken("spiffe://example.org/svc/a", T0, time.Minute)
		good.ID = "tok1"
		for _, tc := range []struct {
			name  string
			edit  func(*store.Token, *audit.Entry)
			error string
		}{
			{"empty ID", func(tok *store.Token, _ *audit.Entry) { tok.ID = "" }, "store: create token : token ID is empty"},
			{"short hash", func(tok *store.Token, _ *audit.Entry) { tok.SecretHash = tok.SecretHash[:16] },
				"store: create token tok1: secret hash is 16 bytes, want 32 (SHA-256)"},
			{"no identity", func(tok *store.Token, _ *audit.Entry) { tok.Identity = "" }, "store: create token tok1: token identity is empty"},
			{"already redeemed", func(tok *store.Token, _ *audit.Entry) { tok.Serial = "1a" },
				"store: create token tok1: a new token cannot be redeemed already"},
			{"no expiry", func(tok *store.Token, _ *audit.Entry) { tok.ExpiresAt = time.Time{} }, "store: create token tok1: expires at is not set"},
			{"expires before created", func(tok *store.Token, _ *audit.Entry) { tok.ExpiresAt = tok.CreatedAt },
				"store: create token tok1: expires at 2030-01-02T03:04:05.123456789Z is not after created at 2030-01-02T03:04:05.123456789Z"},
			{"out of range", func(tok *store.Token, _ *audit.Entry) { tok.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
				"store: create token tok1: expires at 2300-01-01T00:00:00Z is out of range (years 1678 to 2262)"},
			{"audit without time", func(_ *store.Token, a *audit.Entry) { a.Time = time.Time{} }, "store: create token tok1: audit entry time is not set"},
			{"audit without action", func(_ *store.Token, a *audit.Entry) { a.Action = "" }, "store: create token tok1: audit entry action is empty"},
			{"audit without actor", func(_ *store.Token, a *audit.Entry) { a.Actor = "" }, "store: create token tok1: audit entry actor is empty"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tok, a := good, TokenEntry(good)
				tc.edit(&tok, &a)
				wantErr(t, e.s.CreateToken(e.ctx, tok, a), nil, tc.error)
			})
		}
		if _, err := e.s.GetToken(e.ctx, "tok1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetToken after invalid creates: %v, want not found", err)
		}
		if n := len(e.auditLog()); n != 0 {
			t.Errorf("%d audit records after invalid creates, want 0", n)
		}
	}},
	{"CanceledContext", func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		tok := NewToken("spiffe://example.org/svc/a", T0, time.Minute)
		err := e.s.CreateToken(ctx, tok, TokenEntry(tok))
		wantErr(t, err, context.Canceled, "store: create token "+tok.ID+": context canceled")
		if _, err := e.s.GetToken(e.ctx, tok.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetToken: %v, want not found", err)
		}
	}},
}

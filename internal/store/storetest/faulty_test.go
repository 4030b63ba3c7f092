package storetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	f := &storetest.Faulty{Store: storetest.NewSQLite(t)}
	c := storetest.NewCertificate("spiffe://example.org/svc/a", storetest.T0)
	f.Fail = storetest.FailOn(storetest.ErrInjected, "RecordIssuance", "Ping")
	err := f.RecordIssuance(ctx, storetest.NewIssuance(c, ""))
	if !errors.Is(err, store.ErrUnavailable) || err.Error() != "storetest: injected failure: store unavailable" {
		t.Errorf("RecordIssuance = %v, want the injected failure", err)
	}
	if err := f.Ping(ctx); !errors.Is(err, storetest.ErrInjected) {
		t.Errorf("Ping = %v, want the injected failure", err)
	}
	if _, err := f.GetCertificate(ctx, c.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate after a failed issuance = %v, want not found (nothing written)", err)
	}
	if _, err := f.AppendAudit(ctx, audit.Entry{Time: storetest.T0, Actor: "a", Action: audit.ActionAdmin}); err != nil {
		t.Errorf("AppendAudit (not failed) = %v", err)
	}

	// Fail one call only, by counting.
	calls := 0
	f.Fail = func(method string) error {
		if method == "Revoke" {
			calls++
			if calls == 1 {
				return errors.New("boom")
			}
		}
		return nil
	}
	if err := f.RecordIssuance(ctx, storetest.NewIssuance(c, "")); err != nil {
		t.Fatal(err)
	}
	req := store.RevokeRequest{Serial: c.Serial, By: storetest.Admin, Now: storetest.T0.Add(time.Hour)}
	if _, err := f.Revoke(ctx, req); err == nil || err.Error() != "boom" {
		t.Errorf("first Revoke = %v, want boom", err)
	}
	if revs, err := f.Revoke(ctx, req); err != nil || len(revs) != 1 {
		t.Errorf("second Revoke = %v, %v; want one revocation", revs, err)
	}

	// Close closes the wrapped store even when failing.
	f.Fail = storetest.FailOn(storetest.ErrInjected, "Close")
	if err := f.Close(); !errors.Is(err, storetest.ErrInjected) {
		t.Errorf("Close = %v, want the injected failure", err)
	}
	if err := f.Store.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("wrapped store after Close: Ping = %v, want closed", err)
	}
}

package storetest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
)

// ErrInjected is a failure Faulty can inject that looks like a database
// outage: it wraps [store.ErrUnavailable], so a server answers 503.
var ErrInjected = fmt.Errorf("storetest: injected failure: %w", store.ErrUnavailable)

// Faulty wraps a Store and makes chosen calls fail. Before delegating, each
// method calls Fail with its own name ("RecordIssuance", "Revoke", ...); a
// non-nil result is returned as the method's error and the wrapped store
// is not called, so nothing changes. A nil Fail injects nothing. Set Fail
// before sharing the value between goroutines; Fail itself must be safe for
// concurrent use.
type Faulty struct {
	store.Store
	Fail func(method string) error
}

var _ store.Store = (*Faulty)(nil)

// FailOn returns a Fail function that fails the named methods with err.
func FailOn(err error, methods ...string) func(string) error {
	return func(method string) error {
		if slices.Contains(methods, method) {
			return err
		}
		return nil
	}
}

func (f *Faulty) fail(method string) error {
	if f.Fail == nil {
		return nil
	}
	return f.Fail(method)
}

func (f *Faulty) CreateToken(ctx context.Context, t store.Token, a audit.Entry) error {
	if err := f.fail("CreateToken"); err != nil {
		return err
	}
	return f.Store.CreateToken(ctx, t, a)
}

func (f *Faulty) GetToken(ctx context.Context, id string) (store.Token, error) {
	if err := f.fail("GetToken"); err != nil {
		return store.Token{}, err
	}
	return f.Store.GetToken(ctx, id)
}

func (f *Faulty) RecordIssuance(ctx context.Context, is store.Issuance) error {
	if err := f.fail("RecordIssuance"); err != nil {
		return err
	}
	return f.Store.RecordIssuance(ctx, is)
}

func (f *Faulty) GetCertificate(ctx context.Context, serial string) (store.Certificate, error) {
	if err := f.fail("GetCertificate"); err != nil {
		return store.Certificate{}, err
	}
	return f.Store.GetCertificate(ctx, serial)
}

func (f *Faulty) ListCertificates(ctx context.Context, filter store.CertFilter) ([]store.Certificate, error) {
	if err := f.fail("ListCertificates"); err != nil {
		return nil, err
	}
	return f.Store.ListCertificates(ctx, filter)
}

func (f *Faulty) Revoke(ctx context.Context, req store.RevokeRequest) ([]store.Revocation, error) {
	if err := f.fail("Revoke"); err != nil {
		return nil, err
	}
	return f.Store.Revoke(ctx, req)
}

func (f *Faulty) Events(ctx context.Context, after int64, limit int) ([]store.Event, error) {
	if err := f.fail("Events"); err != nil {
		return nil, err
	}
	return f.Store.Events(ctx, after, limit)
}

func (f *Faulty) RevocationSnapshot(ctx context.Context, now time.Time) (store.Snapshot, error) {
	if err := f.fail("RevocationSnapshot"); err != nil {
		return store.Snapshot{}, err
	}
	return f.Store.RevocationSnapshot(ctx, now)
}

func (f *Faulty) AppendAudit(ctx context.Context, e audit.Entry) (audit.Record, error) {
	if err := f.fail("AppendAudit"); err != nil {
		return audit.Record{}, err
	}
	return f.Store.AppendAudit(ctx, e)
}

func (f *Faulty) AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	if err := f.fail("AuditRecords"); err != nil {
		return nil, err
	}
	return f.Store.AuditRecords(ctx, after, limit)
}

func (f *Faulty) ListCAs(ctx context.Context) ([]store.CACert, error) {
	if err := f.fail("ListCAs"); err != nil {
		return nil, err
	}
	return f.Store.ListCAs(ctx)
}

func (f *Faulty) ApplyCAChange(ctx context.Context, ch store.CAChange) (int64, error) {
	if err := f.fail("ApplyCAChange"); err != nil {
		return 0, err
	}
	return f.Store.ApplyCAChange(ctx, ch)
}

func (f *Faulty) Rotations(ctx context.Context) ([]store.Rotation, error) {
	if err := f.fail("Rotations"); err != nil {
		return nil, err
	}
	return f.Store.Rotations(ctx)
}

func (f *Faulty) IssuerUsage(ctx context.Context, now time.Time, except string) (map[string]store.IssuerUsage, error) {
	if err := f.fail("IssuerUsage"); err != nil {
		return nil, err
	}
	return f.Store.IssuerUsage(ctx, now, except)
}

func (f *Faulty) Ping(ctx context.Context) error {
	if err := f.fail("Ping"); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// Close always closes the wrapped store; an injected error is returned
// after it.
func (f *Faulty) Close() error {
	err := f.Store.Close()
	if ferr := f.fail("Close"); ferr != nil {
		return ferr
	}
	return err
}

func (f *Faulty) GrantRole(ctx context.Context, g roles.Grant) error {
	if err := f.fail("GrantRole"); err != nil {
		return err
	}
	return f.Store.GrantRole(ctx, g)
}

func (f *Faulty) RevokeRole(ctx context.Context, g roles.Grant, by string, now time.Time) error {
	if err := f.fail("RevokeRole"); err != nil {
		return err
	}
	return f.Store.RevokeRole(ctx, g, by, now)
}

func (f *Faulty) RoleGrants(ctx context.Context) ([]roles.Grant, error) {
	if err := f.fail("RoleGrants"); err != nil {
		return nil, err
	}
	return f.Store.RoleGrants(ctx)
}

func (f *Faulty) Unrecorded(ctx context.Context) ([]store.Unrecorded, error) {
	if err := f.fail("Unrecorded"); err != nil {
		return nil, err
	}
	return f.Store.Unrecorded(ctx)
}

func (f *Faulty) LastAudit(ctx context.Context, action string) (audit.Record, bool, error) {
	if err := f.fail("LastAudit"); err != nil {
		return audit.Record{}, false, err
	}
	return f.Store.LastAudit(ctx, action)
}

package storetest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
)

var roleTests = []subtest{
	{"GrantListRevoke", func(t *testing.T, e *env) {
		admin := roles.Grant{Role: roles.Admin, Holder: Admin, GrantedBy: "system:init", GrantedAt: T0}
		issuer := roles.Grant{Role: roles.Issuer, Holder: "spiffe://example.org/team/pay/lead", Scope: "spiffe://example.org/team/pay/*", GrantedBy: Admin, GrantedAt: T0}
		for _, g := range []roles.Grant{admin, issuer} {
			if err := e.s.GrantRole(e.ctx, g); err != nil {
				t.Fatalf("GrantRole(%+v): %v", g, err)
			}
		}
		got, err := e.s.RoleGrants(e.ctx)
		if err != nil || !reflect.DeepEqual(got, []roles.Grant{admin, issuer}) {
			t.Fatalf("RoleGrants = %+v, %v", got, err)
		}
		if err := e.s.RevokeRole(e.ctx, roles.Grant{Role: roles.Issuer, Holder: issuer.Holder, Scope: issuer.Scope}, Admin, T0); err != nil {
			t.Fatalf("RevokeRole: %v", err)
		}
		recs := e.auditLog()
		want := []audit.Entry{
			{Time: T0, Actor: "system:init", Action: audit.ActionRoleGrant, Subject: Admin, Detail: `{"role":"admin"}`},
			{Time: T0, Actor: Admin, Action: audit.ActionRoleGrant, Subject: issuer.Holder, Detail: `{"role":"issuer","scope":"spiffe://example.org/team/pay/*"}`},
			{Time: T0, Actor: Admin, Action: audit.ActionRoleRevoke, Subject: issuer.Holder, Detail: `{"role":"issuer","scope":"spiffe://example.org/team/pay/*"}`},
		}
		if len(recs) != len(want) {
			t.Fatalf("%d audit records, want %d", len(recs), len(want))
		}
		for i := range want {
			if recs[i].Entry != want[i] {
				t.Errorf("audit %d = %+v\n want %+v", i, recs[i].Entry, want[i])
			}
		}
	}},
	{"Refusals", func(t *testing.T, e *env) {
		admin := roles.Grant{Role: roles.Admin, Holder: Admin, GrantedBy: "system:init", GrantedAt: T0}
		if err := e.s.GrantRole(e.ctx, admin); err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.s.GrantRole(e.ctx, admin), store.ErrDuplicateGrant, "store: grant role admin to "+Admin+": role already granted")
		wantErr(t, e.s.GrantRole(e.ctx, roles.Grant{Role: "root", Holder: Admin, GrantedBy: Admin, GrantedAt: T0}), roles.ErrInvalid,
			`store: grant role root to `+Admin+`: roles: invalid grant: role "root" is not one of admin, auditor, gateway, issuer`)
		wantErr(t, e.s.RevokeRole(e.ctx, roles.Grant{Role: roles.Gateway, Holder: Admin}, Admin, T0), store.ErrNotFound,
			"store: revoke role gateway from "+Admin+": not found")
		wantErr(t, e.s.RevokeRole(e.ctx, roles.Grant{Role: roles.Admin, Holder: Admin}, Admin, T0), store.ErrLastAdmin,
			"store: revoke role admin from "+Admin+": it is the last admin grant; grant admin to another identity first")
		got, err := e.s.RoleGrants(e.ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("after refusals: %+v, %v; want the one admin grant", got, err)
		}
		if n := len(e.auditLog()); n != 1 {
			t.Errorf("%d audit records, want 1 (refusals are not recorded)", n)
		}
	}}, {"IssuanceChecksGatewayRole", func(t *testing.T, e *env) {
		// The profile of a certificate is chosen by role before it is
		// signed; Issuance.GatewayRole makes the recording transaction check
		// that choice against the grants as they are under the write lock.
		const gw = "spiffe://example.org/gw/a"
		grant := roles.Grant{Role: roles.Gateway, Holder: "spiffe://example.org/gw/*", GrantedBy: Admin, GrantedAt: T0}
		yes, no := true, false
		record := func(gateway *bool) error {
			is := NewIssuance(NewCertificate(gw, T0), "")
			is.GatewayRole = gateway
			return e.s.RecordIssuance(e.ctx, is)
		}
		if err := record(&yes); !errors.Is(err, store.ErrRolesChanged) {
			t.Fatalf("gateway certificate without the grant: %v, want ErrRolesChanged", err)
		}
		if err := record(&no); err != nil {
			t.Fatalf("client certificate without the grant: %v", err)
		}
		if err := e.s.GrantRole(e.ctx, grant); err != nil {
			t.Fatal(err)
		}
		if err := record(&no); !errors.Is(err, store.ErrRolesChanged) {
			t.Fatalf("client certificate after the grant: %v, want ErrRolesChanged", err)
		}
		if err := record(&yes); err != nil {
			t.Fatalf("gateway certificate after the grant: %v", err)
		}
		if err := record(nil); err != nil {
			t.Fatalf("no role check: %v", err)
		}
		if err := e.s.RevokeRole(e.ctx, grant, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if err := record(&yes); !errors.Is(err, store.ErrRolesChanged) {
			t.Fatalf("gateway certificate after the revocation: %v, want ErrRolesChanged", err)
		}
		if got := len(e.auditLog()); got != 5 {
			t.Errorf("%d audit records, want 5 (a refused issuance records nothing)", got)
		}
	}},
}

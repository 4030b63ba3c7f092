package roles_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/certgate/certgate/internal/roles"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		g    roles.Grant
		want string
	}{
		{roles.Grant{Role: "admin", Holder: "spiffe://td/ops/alice"}, ""},
		{roles.Grant{Role: "issuer", Holder: "spiffe://td/team/pay/lead", Scope: "spiffe://td/team/pay/*"}, ""},
		{roles.Grant{Role: "root", Holder: "spiffe://td/a"}, `roles: invalid grant: role "root" is not one of admin, auditor, gateway, issuer`},
		{roles.Grant{Role: "issuer", Holder: "spiffe://td/a"}, "roles: invalid grant: role issuer needs a scope (the identities it may enroll and revoke, e.g. spiffe://td/team/payments/*)"},
		{roles.Grant{Role: "admin", Holder: "spiffe://td/a", Scope: "spiffe://td/b/*"}, "roles: invalid grant: role admin takes no scope (only issuer does)"},
		{roles.Grant{Role: "admin", Holder: "spiffe://other/a"}, `roles: invalid grant: holder "spiffe://other/a" is outside trust domain "td"`},
	} {
		err := tc.g.Validate("td")
		if (tc.want == "") != (err == nil) || (err != nil && (err.Error() != tc.want || !errors.Is(err, roles.ErrInvalid))) {
			t.Errorf("%+v: %v, want %q", tc.g, err, tc.want)
		}
	}
	if err := (roles.Grant{Role: "admin", Holder: "not a spiffe id"}).Validate(""); !errors.Is(err, roles.ErrInvalid) {
		t.Errorf("bad holder: %v", err)
	}
}

func TestFor(t *testing.T) {
	grants := []roles.Grant{
		{Role: "admin", Holder: "spiffe://td/ops/alice"},
		{Role: "gateway", Holder: "spiffe://td/gateway/*"},
		{Role: "auditor", Holder: "spiffe://td/audit/*"},
		{Role: "issuer", Holder: "spiffe://td/team/pay/lead", Scope: "spiffe://td/team/pay/*"},
		{Role: "issuer", Holder: "spiffe://td/team/*", Scope: "spiffe://td/shared/x"},
	}
	if h := roles.For(grants, "spiffe://td/admin/alice"); h.Any() {
		t.Errorf("a name under /admin/ holds %v", h.Names())
	}
	if h := roles.For(grants, "spiffe://td/ops/alice"); !h.Admin || h.Gateway {
		t.Errorf("alice: %v", h.Names())
	}
	if h := roles.For(grants, "spiffe://td/gateway/gw1"); !h.Gateway || h.Admin {
		t.Errorf("gw1: %v", h.Names())
	}
	h := roles.For(grants, "spiffe://td/team/pay/lead")
	if want := []string{"issuer(spiffe://td/team/pay/*)", "issuer(spiffe://td/shared/x)"}; !slices.Equal(h.Names(), want) {
		t.Errorf("lead: %v, want %v", h.Names(), want)
	}
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"spiffe://td/team/pay/svc1", true},
		{"spiffe://td/team/pay/a/b", true},
		{"spiffe://td/team/pay/a/*", true},
		{"spiffe://td/team/pay/*", true},
		{"spiffe://td/team/pay", false},
		{"spiffe://td/team/payments/x", false},
		{"spiffe://td/team/*", false},
		{"spiffe://td/shared/x", true},
		{"spiffe://td/shared/x/y", false},
	} {
		if _, ok := h.MayIssueFor(tc.target); ok != tc.ok {
			t.Errorf("MayIssueFor(%s) = %v, want %v", tc.target, ok, tc.ok)
		}
	}
}

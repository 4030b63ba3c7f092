package server_test

import (
	"context"
	"crypto/tls"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// state is what a refused request must leave as it was: the audit log
// (every change is audited in its transaction), the certificates and
// their revocations, and the role grants.
type state struct {
	audit  []audit.Record
	certs  []store.Certificate
	grants []wire.RoleGrant
}

func (e *env) state() state {
	e.t.Helper()
	ctx := context.Background()
	recs, err := e.store.AuditRecords(ctx, 0, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	// Admin reads append an admin.action record; leave them out so that
	// looking does not count as a change.
	var kept []audit.Record
	for _, r := range recs {
		if r.Action != audit.ActionAdmin {
			kept = append(kept, r)
		}
	}
	certs, err := e.store.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	grants, err := e.client(&e.admin).Roles(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return state{kept, certs, grants}
}

func (e *env) unchanged(before state) {
	e.t.Helper()
	after := e.state()
	if !reflect.DeepEqual(before, after) {
		e.t.Fatalf("a refused request changed something:\nbefore %+v\nafter  %+v", before, after)
	}
}

func (e *env) grant(role, holder, scope string) {
	e.t.Helper()
	if _, err := e.client(&e.admin).GrantRole(context.Background(), wire.RoleChange{Role: role, Holder: holder, Scope: scope}); err != nil {
		e.t.Fatal(err)
	}
}

// TestPrivilegeEscalation tries what an attacker holding one credential
// would: each attempt is refused with the exact error, and nothing changes.
func TestPrivilegeEscalation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(&e.admin)

	// A name grants nothing: a token for spiffe://TD/admin/anything is an
	// ordinary client token, and its holder is no admin.
	tok, err := admin.CreateToken(ctx, "spiffe://example.org/admin/anything", 0)
	if err != nil {
		t.Fatal(err)
	}
	fake := e.enrollCert(tok.Token, "spiffe://example.org/admin/anything")
	_, err = e.client(&fake).CreateToken(ctx, svcID, 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/admin/anything may not create enrollment tokens: it holds no role; that needs the role admin or issuer")

	// Minting a token for an identity that holds admin needs --role.
	e.grant("admin", "spiffe://example.org/ops/*", "")
	before := e.state()
	_, err = admin.CreateToken(ctx, "spiffe://example.org/ops/mallory", 0)
	wantAPIError(t, err, 400, "role_required", "spiffe://example.org/ops/mallory holds the role admin: whoever redeems this token gets what that role allows; if that is meant, say so with --role admin (the token then lives at most 1h0m0s)")
	_, err = admin.CreateRoleToken(ctx, "spiffe://example.org/ops/mallory", "gateway", 0)
	wantAPIError(t, err, 400, "bad_role", "--role gateway does not name what spiffe://example.org/ops/mallory holds: admin (say --role admin)")
	_, err = admin.CreateRoleToken(ctx, "spiffe://example.org/ops/mallory", "admin", 2*time.Hour)
	wantAPIError(t, err, 400, "bad_ttl", "ca: token TTL 2h0m0s is longer than the 1h0m0s a token for an identity holding a role may live (tokens.max_privileged_ttl)")
	_, err = admin.CreateRoleToken(ctx, svcID, "admin", 0)
	wantAPIError(t, err, 400, "bad_role", "--role admin: spiffe://example.org/svc/billing holds no role; grant it first (certgate role grant), or leave --role out for a plain client")
	e.unchanged(before)

	// With --role it is minted, short-lived, and audited with its minter.
	priv, err := admin.CreateRoleToken(ctx, "spiffe://example.org/ops/mallory", "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := priv.ExpiresAt.Sub(e.clock.Now()); got != 15*time.Minute {
		t.Errorf("privileged token lives %s, want the default 15m", got)
	}
	recs, _ := e.store.AuditRecords(ctx, 0, 0)
	last := recs[len(recs)-1]
	if last.Action != audit.ActionTokenCreate || last.Actor != "spiffe://example.org/admin/alice" || !strings.Contains(last.Detail, `"privileged_roles":["admin"]`) {
		t.Errorf("audit of the privileged token: %+v", last.Entry)
	}

	// An auditor reads but writes nothing.
	e.grant("auditor", "spiffe://example.org/audit/eve", "")
	aud := e.clientCert("/audit/eve", ca.ClientProfile)
	if _, err := e.client(&aud).AuditRecords(ctx, 0, 10); err != nil {
		t.Fatalf("auditor reads the audit log: %v", err)
	}
	if _, err := e.client(&aud).Roles(ctx); err != nil {
		t.Fatalf("auditor reads roles: %v", err)
	}
	victim := e.clientCert("/svc/victim", ca.ClientProfile)
	before = e.state()
	_, err = e.client(&aud).CreateToken(ctx, svcID, 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/audit/eve may not create enrollment tokens: it holds only auditor; that needs the role admin or issuer")
	_, err = e.client(&aud).Revoke(ctx, wire.RevokeRequest{Serial: ca.SerialHex(victim.Leaf.SerialNumber)})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/audit/eve may not revoke certificates: it holds only auditor; that needs the role admin or issuer")
	_, err = e.client(&aud).GrantRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/audit/eve"})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/audit/eve may not grant roles: it holds only auditor; that needs the role admin")
	_, err = e.client(&aud).RevokeRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/admin/alice"})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/audit/eve may not revoke roles: it holds only auditor; that needs the role admin")
	e.unchanged(before)

	// A revoked admin is refused at its next request, certificate and all.
	e.grant("admin", "spiffe://example.org/ops/bob", "")
	bob := e.clientCert("/ops/bob", ca.ClientProfile)
	if _, err := e.client(&bob).CreateToken(ctx, svcID, 0); err != nil {
		t.Fatalf("bob as admin: %v", err)
	}
	if _, err := admin.RevokeRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/ops/bob"}); err != nil {
		t.Fatal(err)
	}
	// bob is still under ops/*, granted above: revoke that too.
	if _, err := admin.RevokeRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/ops/*"}); err != nil {
		t.Fatal(err)
	}
	before = e.state()
	_, err = e.client(&bob).CreateToken(ctx, svcID, 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/ops/bob may not create enrollment tokens: it holds no role; that needs the role admin or issuer")
	_, err = e.client(&bob).GrantRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/ops/bob"})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/ops/bob may not grant roles: it holds no role; that needs the role admin")
	e.unchanged(before)

	// The last admin cannot be revoked; a malformed grant is refused.
	_, err = admin.RevokeRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/admin/alice"})
	wantAPIError(t, err, 409, "conflict", "revoking admin from spiffe://example.org/admin/alice: it is the last admin grant; grant admin to another identity first")
	_, err = admin.GrantRole(ctx, wire.RoleChange{Role: "root", Holder: "spiffe://example.org/x"})
	wantAPIError(t, err, 400, "bad_role", `roles: invalid grant: role "root" is not one of admin, auditor, gateway, issuer`)
	_, err = admin.GrantRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://other.org/x"})
	wantAPIError(t, err, 400, "bad_role", `roles: invalid grant: holder "spiffe://other.org/x" is outside trust domain "example.org"`)
	_, err = admin.GrantRole(ctx, wire.RoleChange{Role: "admin", Holder: "spiffe://example.org/admin/alice"})
	wantAPIError(t, err, 409, "conflict", "spiffe://example.org/admin/alice already holds role admin")
	_, err = admin.RevokeRole(ctx, wire.RoleChange{Role: "gateway", Holder: "spiffe://example.org/nobody"})
	wantAPIError(t, err, 404, "not_found", "spiffe://example.org/nobody holds no grant of role gateway")
	e.unchanged(before)
}

// TestDelegatedEnrollment: two teams, each with an issuer for its own
// identities, provision and revoke their own clients and cannot touch the
// other's; the operator sees every step in the audit log.
func TestDelegatedEnrollment(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.grant("issuer", "spiffe://example.org/team/payments/lead", "spiffe://example.org/team/payments/*")
	e.grant("issuer", "spiffe://example.org/team/search/lead", "spiffe://example.org/team/search/*")
	pay := e.clientCert("/team/payments/lead", ca.ClientProfile)
	search := e.clientCert("/team/search/lead", ca.ClientProfile)
	payC, searchC := e.client(&pay), e.client(&search)

	clients := map[string]tls.Certificate{}
	for _, tc := range []struct {
		c  interface{}
		id string
	}{{payC, "spiffe://example.org/team/payments/api"}, {searchC, "spiffe://example.org/team/search/indexer"}} {
		cl := payC
		if tc.c == searchC {
			cl = searchC
		}
		tok, err := cl.CreateToken(ctx, tc.id, 0)
		if err != nil {
			t.Fatalf("team mints for %s: %v", tc.id, err)
		}
		clients[tc.id] = e.enrollCert(tok.Token, tc.id)
	}
	paySerial := ca.SerialHex(clients["spiffe://example.org/team/payments/api"].Leaf.SerialNumber)
	searchSerial := ca.SerialHex(clients["spiffe://example.org/team/search/indexer"].Leaf.SerialNumber)

	before := e.state()
	_, err := searchC.CreateToken(ctx, "spiffe://example.org/team/payments/evil", 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/search/lead may mint tokens only inside its issuer scope spiffe://example.org/team/search/*; spiffe://example.org/team/payments/evil is outside it")
	_, err = searchC.CreateToken(ctx, "spiffe://example.org/team/search", 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/search/lead may mint tokens only inside its issuer scope spiffe://example.org/team/search/*; spiffe://example.org/team/search is outside it")
	_, err = searchC.Revoke(ctx, wire.RevokeRequest{Serial: paySerial})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/search/lead may revoke only inside its issuer scope spiffe://example.org/team/search/*; certificate "+paySerial+" (of spiffe://example.org/team/payments/api) is outside it")
	_, err = searchC.Revoke(ctx, wire.RevokeRequest{Identity: "spiffe://example.org/team/payments/api"})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/search/lead may revoke only inside its issuer scope spiffe://example.org/team/search/*; identity spiffe://example.org/team/payments/api is outside it")
	_, err = searchC.Revoke(ctx, wire.RevokeRequest{IdentityPrefix: "spiffe://example.org/team", DryRun: true})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/search/lead may revoke only inside its issuer scope spiffe://example.org/team/search/*; identities under spiffe://example.org/team is outside it")
	_, err = payC.Revoke(ctx, wire.RevokeRequest{Serial: searchSerial})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/payments/lead may revoke only inside its issuer scope spiffe://example.org/team/payments/*; certificate "+searchSerial+" (of spiffe://example.org/team/search/indexer) is outside it")
	_, err = payC.ListCertificates(ctx, apiclient.ListFilter{})
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/payments/lead may not list certificates: it holds only issuer(spiffe://example.org/team/payments/*); that needs the role admin or auditor")
	// A team cannot mint a privileged token, even inside its scope.
	e.grant("gateway", "spiffe://example.org/team/payments/gw", "")
	before = e.state()
	_, err = payC.CreateRoleToken(ctx, "spiffe://example.org/team/payments/gw", "gateway", 0)
	wantAPIError(t, err, 403, "forbidden", "identity spiffe://example.org/team/payments/lead may not mint a token for spiffe://example.org/team/payments/gw: it holds gateway, and only an admin mints tokens for identities that hold a role")
	e.unchanged(before)

	// Inside its scope a team revokes its own.
	revs, err := payC.Revoke(ctx, wire.RevokeRequest{Serial: paySerial})
	if err != nil || len(revs) != 1 || revs[0].RevokedBy != "spiffe://example.org/team/payments/lead" {
		t.Fatalf("team revokes its own: %+v %v", revs, err)
	}
	// The operator sees the team's actions, each under its identity and scope.
	recs, _ := e.store.AuditRecords(ctx, 0, 0)
	var mints, revokes int
	for _, r := range recs {
		if r.Actor == "spiffe://example.org/team/payments/lead" && r.Action == audit.ActionTokenCreate && strings.Contains(r.Detail, `"issuer_scope":"spiffe://example.org/team/payments/*"`) {
			mints++
		}
		if r.Actor == "spiffe://example.org/team/payments/lead" && r.Action == audit.ActionRevoke && r.Subject == paySerial {
			revokes++
		}
	}
	if mints != 1 || revokes != 1 {
		t.Errorf("audit shows %d mints and %d revocations by the payments issuer, want 1 and 1", mints, revokes)
	}
}

// enrollCert redeems tok with a new key for id and returns the credentials.
func (e *env) enrollCert(tok, id string) tls.Certificate {
	e.t.Helper()
	key, err := keytype.Generate(keytype.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := csr.Create(key, identity.MustParse(id))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.client(nil).Enroll(context.Background(), tok, string(p))
	if err != nil {
		e.t.Fatal(err)
	}
	certs, err := pemutil.ParseCertificates([]byte(resp.Certificate + resp.Chain))
	if err != nil {
		e.t.Fatal(err)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

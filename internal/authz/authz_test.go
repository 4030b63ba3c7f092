package authz

import (
	"testing"

	"github.com/certgate/certgate/internal/revocation"
)

func testPolicy(t testing.TB) *Policy {
	p, err := New([]RouteConfig{
		{Name: "admin", Host: "api.example.org", PathPrefix: "/admin", Allow: []string{"spiffe://example.org/admin/alice"}},
		{Name: "reports-read", PathPrefix: "/reports/", Methods: []string{"get", "HEAD"}, Allow: []string{"spiffe://example.org/svc/*"}},
		{Name: "billing", PathPrefix: "/v1/billing", Allow: []string{"spiffe://example.org/svc/billing", "spiffe://example.org/team/finance/*"}},
		{Name: "catchall", Allow: []string{"spiffe://example.org/svc/frontend"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorize(t *testing.T) {
	p := testPolicy(t)
	for _, tc := range []struct {
		host, method, path, id string
		route                  string
		reason                 Reason
		matched                string
	}{
		{"api.example.org", "GET", "/admin", "spiffe://example.org/admin/alice", "admin", ReasonAllowed, "spiffe://example.org/admin/alice"},
		{"API.Example.org:8443", "POST", "/admin/users", "spiffe://example.org/admin/alice", "admin", ReasonAllowed, "spiffe://example.org/admin/alice"},
		{"api.example.org", "GET", "/admin/users", "spiffe://example.org/admin/bob", "admin", ReasonNotAllowed, ""},
		{"other.example.org", "GET", "/admin", "spiffe://example.org/admin/alice", "catchall", ReasonNotAllowed, ""},
		{"api.example.org", "GET", "/administrator", "spiffe://example.org/svc/frontend", "catchall", ReasonAllowed, "spiffe://example.org/svc/frontend"},
		{"x", "GET", "/reports/q1", "spiffe://example.org/svc/a/b", "reports-read", ReasonAllowed, "spiffe://example.org/svc/*"},
		{"x", "GET", "/reports/q1", "spiffe://example.org/svc", "reports-read", ReasonNotAllowed, ""},
		{"x", "GET", "/reports/q1", "spiffe://example.org/svcx/a", "reports-read", ReasonNotAllowed, ""},
		{"x", "DELETE", "/reports/q1", "spiffe://example.org/svc/frontend", "catchall", ReasonAllowed, "spiffe://example.org/svc/frontend"},
		// Methods match in any case: "get" does not skip the [GET] route.
		{"x", "get", "/reports/q1", "spiffe://example.org/svc/frontend", "reports-read", ReasonAllowed, "spiffe://example.org/svc/*"},
		{"x", "hEaD", "/reports/q1", "spiffe://example.org/svc/a", "reports-read", ReasonAllowed, "spiffe://example.org/svc/*"},
		{"x", "POST", "/v1/billing/pay", "spiffe://example.org/team/finance/carol", "billing", ReasonAllowed, "spiffe://example.org/team/finance/*"},
		{"[::1]:8443", "POST", "/v1/billing", "spiffe://example.org/svc/billing", "billing", ReasonAllowed, "spiffe://example.org/svc/billing"},
		{"x", "POST", "/v1/billing", "spiffe://other.org/svc/billing", "billing", ReasonNotAllowed, ""},
	} {
		d := p.Authorize(tc.host, tc.method, tc.path, tc.id)
		name := ""
		if d.Route != nil {
			name = d.Route.Name
		}
		if name != tc.route || d.Reason != tc.reason || d.Matched != tc.matched || d.Allowed != (tc.reason == ReasonAllowed) {
			t.Errorf("Authorize(%s %s %s %s) = route %q %+v; want route %q reason %s matched %q", tc.host, tc.method, tc.path, tc.id, name, d, tc.route, tc.reason, tc.matched)
		}
	}
}

func TestNoRoute(t *testing.T) {
	p, err := New([]RouteConfig{{Name: "a", PathPrefix: "/a", Allow: []string{"spiffe://example.org/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Authorize("h", "GET", "/b", "spiffe://example.org/x"); d.Route != nil || d.Allowed || d.Reason != ReasonNoRoute {
		t.Fatalf("decision = %+v", d)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg RouteConfig
		err string
	}{
		{RouteConfig{Name: "r", Allow: []string{"spiffe://example.org/a/**"}}, `authz: route "r": invalid SPIFFE ID "spiffe://example.org/a/**": path segment "**" has invalid character '*'`},
		{RouteConfig{Name: "r", Allow: []string{"https://example.org/a/*"}}, `authz: route "r": pattern "https://example.org/a/*": invalid SPIFFE ID "https://example.org/a": must start with spiffe://`},
		{RouteConfig{Name: "r", PathPrefix: "api"}, `authz: route "r": path prefix "api" does not start with '/'`},
	} {
		_, err := New([]RouteConfig{tc.cfg})
		if err == nil || err.Error() != tc.err {
			t.Errorf("New(%+v) error = %v, want %q", tc.cfg, err, tc.err)
		}
	}
	if _, err := NewRule([]string{"nope"}); err == nil || err.Error() != `authz: invalid SPIFFE ID "nope": must start with spiffe://` {
		t.Errorf("NewRule error = %v", err)
	}
}

func TestAuthorizeAllocs(t *testing.T) {
	p := testPolicy(t)
	n := testing.AllocsPerRun(1000, func() {
		p.Authorize("API.example.org:8443", "POST", "/v1/billing/pay", "spiffe://example.org/team/finance/carol")
	})
	if n != 0 {
		t.Fatalf("Authorize allocates %v times per call", n)
	}
}

// BenchmarkAuthorize measures the per-request work of the gateway: the
// revocation lookup of the connection's serial plus the route and rule match.
func BenchmarkAuthorize(b *testing.B) {
	p := testPolicy(b)
	h := revocation.NewHolder()
	serials := make([]string, 10000)
	for i := range serials {
		serials[i] = revocation.SerialOf(bigSerial(i))
	}
	h.Update(revocation.NewSet(1, zeroTime, serials...))
	serial := "7f3a9c0d5e1b2a4c6d8e0f1a2b3c4d5e"
	b.ReportAllocs()
	for b.Loop() {
		if h.Revoked(serial) {
			b.Fatal("revoked")
		}
		d := p.Authorize("api.example.org:8443", "POST", "/v1/billing/pay", "spiffe://example.org/team/finance/carol")
		if !d.Allowed {
			b.Fatal("denied")
		}
	}
}

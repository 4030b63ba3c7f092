package authz

import (
	"fmt"
	"strings"

	"github.com/certgate/certgate/internal/identity"
)

// Reason explains a [Decision].
type Reason string

// The reasons a decision can carry.
const (
	ReasonAllowed    Reason = "allowed"
	ReasonNoRoute    Reason = "no_route"
	ReasonNotAllowed Reason = "identity_not_allowed"
)

// Rule is a set of allowed identities.
type Rule struct {
	exact    map[string]struct{}
	patterns []pattern
}

type pattern struct {
	prefix string // "spiffe://td/a/" for the pattern "spiffe://td/a/*"
	text   string // "spiffe://td/a/*"
}

// NewRule parses allow entries: exact SPIFFE IDs, or patterns ending in
// "/*" that match any ID with at least one more path segment.
func NewRule(allow []string) (Rule, error) {
	r, err := newRule(allow)
	if err != nil {
		return Rule{}, fmt.Errorf("authz: %w", err)
	}
	return r, nil
}

func newRule(allow []string) (Rule, error) {
	r := Rule{exact: make(map[string]struct{}, len(allow))}
	for _, a := range allow {
		if base, ok := strings.CutSuffix(a, "/*"); ok {
			id, err := identity.Parse(base)
			if err != nil {
				return Rule{}, fmt.Errorf("pattern %q: %w", a, err)
			}
			r.patterns = append(r.patterns, pattern{prefix: id.String() + "/", text: id.String() + "/*"})
			continue
		}
		id, err := identity.Parse(a)
		if err != nil {
			return Rule{}, err
		}
		r.exact[id.String()] = struct{}{}
	}
	return r, nil
}

// Match reports whether id is allowed, and the entry that allowed it
// ("spiffe://td/a/*" for a pattern).
func (r *Rule) Match(id string) (string, bool) {
	if _, ok := r.exact[id]; ok {
		return id, true
	}
	for _, p := range r.patterns {
		if len(id) > len(p.prefix) && id[:len(p.prefix)] == p.prefix {
			return p.text, true
		}
	}
	return "", false
}

// Route matches requests and holds the rule for them.
type Route struct {
	// Index is the route's position in the policy, for the caller's data.
	Index int
	Name  string
	// Host is lowercase without port; empty matches any host.
	Host string
	// PathPrefix starts with "/" and matches whole segments.
	PathPrefix string
	// Methods are uppercase; empty matches any method.
	Methods []string
	Allow   Rule
}

// RouteConfig is what [New] needs to build a route.
type RouteConfig struct {
	Name       string
	Host       string
	PathPrefix string
	Methods    []string
	Allow      []string
}

// Policy is an ordered list of routes. It is immutable once built.
type Policy struct {
	routes []Route
}

// New builds a policy from route configs, in order.
func New(configs []RouteConfig) (*Policy, error) {
	p := &Policy{routes: make([]Route, 0, len(configs))}
	for i, c := range configs {
		rule, err := newRule(c.Allow)
		if err != nil {
			return nil, fmt.Errorf("authz: route %q: %w", c.Name, err)
		}
		prefix := c.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		if !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("authz: route %q: path prefix %q does not start with '/'", c.Name, prefix)
		}
		methods := make([]string, len(c.Methods))
		for j, m := range c.Methods {
			methods[j] = strings.ToUpper(m)
		}
		p.routes = append(p.routes, Route{
			Index: i, Name: c.Name, Host: strings.ToLower(c.Host),
			PathPrefix: prefix, Methods: methods, Allow: rule,
		})
	}
	return p, nil
}

// Routes returns the routes in order.
func (p *Policy) Routes() []Route { return p.routes }

// Decision is the outcome of [Policy.Authorize].
type Decision struct {
	// Route is the matching route, nil when none matched.
	Route   *Route
	Allowed bool
	Reason  Reason
	// Matched is the allow entry that admitted the identity.
	Matched string
}

// Match returns the first route matching host (with or without port, any
// case), method (any case) and path (without query, canonical: see
// internal/gateway/canon), or nil.
func (p *Policy) Match(host, method, path string) *Route {
	host = stripPort(host)
	for i := range p.routes {
		r := &p.routes[i]
		if r.Host != "" && !strings.EqualFold(r.Host, host) {
			continue
		}
		if !pathHasPrefix(path, r.PathPrefix) {
			continue
		}
		if len(r.Methods) > 0 && !contains(r.Methods, method) {
			continue
		}
		return r
	}
	return nil
}

// Authorize decides whether id may send method host path. It allocates
// nothing.
func (p *Policy) Authorize(host, method, path, id string) Decision {
	r := p.Match(host, method, path)
	if r == nil {
		return Decision{Reason: ReasonNoRoute}
	}
	m, ok := r.Allow.Match(id)
	if !ok {
		return Decision{Route: r, Reason: ReasonNotAllowed}
	}
	return Decision{Route: r, Allowed: true, Reason: ReasonAllowed, Matched: m}
}

// pathHasPrefix matches whole segments: "/api" matches "/api", "/api/" and
// "/api/x" but not "/apix"; a prefix ending in "/" matches what starts with it.
func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// contains reports whether list holds s ignoring ASCII case: methods
// match case-insensitively, so "get" cannot slip past a [GET] route to the
// next one. (The gateway also forwards them upper case.)
func contains(list []string, s string) bool {
	for _, v := range list {
		if len(v) == len(s) && asciiEqualFold(v, s) {
			return true
		}
	}
	return false
}

func asciiEqualFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Package roles says what an identity may do on the control plane, from
// role grants kept as data: a grant names a role, the identity (or the
// identity pattern, "spiffe://TD/ops/*") that holds it, and for the issuer
// role the identity pattern it acts on. Nothing is implied by an identity's
// name: spiffe://TD/admin/x holds no role unless a grant says so.
//
// The roles:
//
//   - admin: every admin endpoint (tokens, revocation, certificates, the
//     audit log, roles).
//   - auditor: read only: certificates, the audit log, roles, the change feed,
//     the web console's pages (without its write actions).
//   - gateway: follows the change feed and the revocation list, and reads
//     the audit log (a witness of its checkpoints, package auditcheck);
//     its certificates may also serve TLS (the gateway profile).
//   - issuer: mints enrollment tokens for, and revokes certificates of,
//     identities inside its scope only.
//
// This package is pure: the store keeps the grants, the server asks [For]
// what a caller holds. What it is not for: authenticating (the server
// checks the certificate), or gateway route rules (internal/authz).
package roles

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/authz"
	"github.com/certgate/certgate/internal/identity"
)

// The roles.
const (
	Admin   = "admin"
	Auditor = "auditor"
	Gateway = "gateway"
	Issuer  = "issuer"
)

// All lists the roles in the order they are shown.
var All = []string{Admin, Auditor, Gateway, Issuer}

// ErrInvalid is wrapped by [Grant.Validate].
var ErrInvalid = errors.New("roles: invalid grant")

// Grant is one role granted to an identity or identity pattern.
type Grant struct {
	Role string
	// Holder is the identity ("spiffe://TD/ops/alice") or pattern
	// ("spiffe://TD/ops/*") that holds the role.
	Holder string
	// Scope is, for Issuer only, the identity or pattern the issuer acts
	// on; empty for the other roles.
	Scope     string
	GrantedBy string
	GrantedAt time.Time
}

// Validate checks a grant's role, holder and scope, in trust domain td
// (any if empty).
func (g Grant) Validate(td string) error {
	if !slices.Contains(All, g.Role) {
		return fmt.Errorf("%w: role %q is not one of %s", ErrInvalid, g.Role, strings.Join(All, ", "))
	}
	if err := checkPattern("holder", g.Holder, td); err != nil {
		return err
	}
	switch {
	case g.Role == Issuer && g.Scope == "":
		return fmt.Errorf("%w: role issuer needs a scope (the identities it may enroll and revoke, e.g. spiffe://%s/team/payments/*)", ErrInvalid, orTD(td))
	case g.Role != Issuer && g.Scope != "":
		return fmt.Errorf("%w: role %s takes no scope (only issuer does)", ErrInvalid, g.Role)
	case g.Scope != "":
		return checkPattern("scope", g.Scope, td)
	}
	return nil
}

func orTD(td string) string {
	if td == "" {
		return "TD"
	}
	return td
}

func checkPattern(what, p, td string) error {
	if _, err := authz.NewRule([]string{p}); err != nil {
		return fmt.Errorf("%w: %s %q is not a SPIFFE ID or a pattern ending in /*: %w", ErrInvalid, what, p, err)
	}
	id, _ := identity.Parse(strings.TrimSuffix(p, "/*"))
	if td != "" && !id.MemberOf(td) {
		return fmt.Errorf("%w: %s %q is outside trust domain %q", ErrInvalid, what, p, td)
	}
	return nil
}

// Held is what one identity holds.
type Held struct {
	Admin, Auditor, Gateway bool
	// Scopes are the issuer scopes it holds.
	Scopes []string
}

// Any reports whether it holds any role.
func (h Held) Any() bool { return h.Admin || h.Auditor || h.Gateway || len(h.Scopes) > 0 }

// Names lists the roles held, e.g. "admin, issuer(spiffe://td/team/*)".
func (h Held) Names() []string {
	var out []string
	if h.Admin {
		out = append(out, Admin)
	}
	if h.Auditor {
		out = append(out, Auditor)
	}
	if h.Gateway {
		out = append(out, Gateway)
	}
	for _, s := range h.Scopes {
		out = append(out, Issuer+"("+s+")")
	}
	return out
}

// MayIssueFor reports whether an issuer scope covers target, and which one.
// A target that is itself a pattern ("spiffe://td/team/a/*", a revocation by
// prefix) is covered only by a scope that covers all of it.
func (h Held) MayIssueFor(target string) (string, bool) {
	for _, s := range h.Scopes {
		if Covers(s, target) {
			return s, true
		}
	}
	return "", false
}

// Covers reports whether the identity or pattern scope covers target, an
// identity or a pattern.
func Covers(scope, target string) bool {
	if scope == target {
		return true
	}
	base, ok := strings.CutSuffix(scope, "/*")
	if !ok {
		return false
	}
	t := strings.TrimSuffix(target, "/*")
	return strings.HasPrefix(t, base+"/") && len(t) > len(base)+1
}

// For returns what id holds under grants. Malformed grants (the store
// validates them, so only a hand-edited database has them) grant nothing.
func For(grants []Grant, id string) Held {
	var h Held
	for _, g := range grants {
		r, err := authz.NewRule([]string{g.Holder})
		if err != nil {
			continue
		}
		if _, ok := r.Match(id); !ok {
			continue
		}
		switch g.Role {
		case Admin:
			h.Admin = true
		case Auditor:
			h.Auditor = true
		case Gateway:
			h.Gateway = true
		case Issuer:
			if g.Scope != "" && !slices.Contains(h.Scopes, g.Scope) {
				h.Scopes = append(h.Scopes, g.Scope)
			}
		}
	}
	return h
}

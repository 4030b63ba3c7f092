package identity

import "strings"

// Naming conventions. certgate init names its admin identity under
// /admin/ and gateways take identities under /gateway/; these names grant
// nothing: what an identity may do is granted as data (package roles). The
// store's schema migration 3 granted these prefixes explicitly to
// installations made when the names did carry the roles.
const (
	AdminPrefix   = "/admin/"
	GatewayPrefix = "/gateway/"
)

// Under reports whether id's path starts with prefix, e.g. [GatewayPrefix].
func (id ID) Under(prefix string) bool { return strings.HasPrefix(id.path, prefix) }

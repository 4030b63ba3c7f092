package identity

import "strings"

// Role path prefixes. Today a certificate's role is read from the first
// segment of its identity's path: the server lets /admin/ identities use
// the admin API and /gateway/ identities follow the change feed, and the CA
// gives /gateway/ identities a serving certificate. These constants are
// the one place those prefixes are spelled, so that a later move to roles
// granted as data changes one package, not every caller.
const (
	AdminPrefix   = "/admin/"
	GatewayPrefix = "/gateway/"
)

// Under reports whether id's path starts with prefix, e.g. [GatewayPrefix].
func (id ID) Under(prefix string) bool { return strings.HasPrefix(id.path, prefix) }

// Package canon turns a request's method, host and path into the one form
// the gateway authorizes and forwards, or refuses a request that an
// upstream could read more than one way. Canonicalize, then authorize,
// then forward exactly what was authorized: a route rule for /admin means
// nothing if /%61dmin, //admin or /x/..%2fadmin reach /admin at an
// upstream that decodes or normalizes its paths (nginx, Python, most
// frameworks) while the gateway matched them against another route.
//
// # Paths
//
// [Policy.Path] computes the canonical path once per request; the gateway
// matches routes against it and forwards it, over HTTP/1.1, HTTP/2, for
// WebSocket upgrades and in `certgate policy test` alike. It is decoded
// once in full and checked as a decoding upstream would see it, then
// encoded again in exactly one way:
//
//   - Percent-encoded octets that decode to a character a path segment may
//     carry raw (RFC 3986 pchar: letters, digits, "-._~!$&'()*+,=:@") are
//     decoded; every other octet is "%XX" with upper-case hex; characters
//     clients send raw though RFC 3986 wants them encoded ("<>[]^`{|} and
//     the double quote) are encoded. So "/%61dmin" is "/admin" and "/a%7b"
//     and "/a{" are both "/a%7B": two paths any decoding upstream reads
//     alike have one canonical form, and a route prefix (itself required
//     to be canonical) matches both or neither.
//   - Refused with 400 and a logged reason, whatever the policy: a "." or
//     ".." segment, raw or encoded ("%2e", "%2E%2e"), also as the name of
//     a segment with parameters ("..;x", which Tomcat resolves); a
//     backslash, raw or "%5C" (IIS and some frameworks read it as '/'); a
//     control character or NUL, raw or encoded; a '%' not followed by two
//     hex digits; a second layer of encoding ("%252e", "%25%32%65": what a
//     decoded path would decode again), which covers dot segments and
//     slashes at any decoding depth; bytes that decode to invalid UTF-8,
//     which covers overlong encodings ("%c0%af" for '/', "%c0%ae" for
//     '.'); an encoded ';' ("%3B"); a raw byte above 0x7E or a space.
//
// Three cases have a policy ([Policy], the config's paths section), with
// the safe choice as default:
//
//   - repeated_slashes (as nginx's merge_slashes and Envoy's
//     merge_slashes): "merge" (default) turns "//admin" into "/admin";
//     "reject" refuses it. There is no "keep": an upstream that merges
//     (nginx by default, Python's http.server) would serve /admin for a
//     path routed as something else.
//   - escaped_slashes (as Envoy's path_with_escaped_slashes_action):
//     "reject" (default; Envoy's REJECT_REQUEST) refuses "%2F"; "decode"
//     (Envoy's UNESCAPE_AND_FORWARD) reads it as '/', then merges and
//     checks as above, and forwards the real slash; "keep" (Envoy's
//     KEEP_UNCHANGED) forwards "%2F" to upstreams that take it as data
//     (an ID with a slash in it), while routes still match it as a slash
//     and an empty segment made with it is refused, so a decoding
//     upstream cannot be reached past a route that way either.
//   - semicolons: "reject" (default, as Spring's StrictHttpFirewall)
//     refuses ';'; "allow" forwards ";name=value" path parameters and
//     matches each segment by its name alone, so "/admin;x=1" is routed
//     as "/admin", as a servlet container reads it.
//
// Envoy's normalize_path resolves dot segments (RFC 3986 section 5.2.4)
// and nginx does so before location matching; this package refuses them
// instead: clients that follow RFC 3986 (curl, browsers, every HTTP
// library) remove them before sending, so one that arrives was written by
// hand, and refusing it leaves no reading for an upstream to differ on.
//
// Matching is case-sensitive, as Go's net/http, Python and nginx's prefix
// locations are.
//
// # Methods and hosts
//
// [Methods.Canonical] reads a method case-insensitively ("get" is GET,
// as Werkzeug and PHP read it) and forwards it upper case; a method the
// gateway does not know (not standard and named by no route) is refused
// with 501. CONNECT and TRACE are refused unless a route names them.
// [Host] lower-cases the host and drops a trailing dot, so a host-scoped
// route cannot be missed with "API.EXAMPLE.ORG." while the upstream's
// virtual hosts match it.
package canon

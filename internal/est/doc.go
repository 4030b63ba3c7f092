// Package est is the wire format of EST, Enrollment over Secure Transport
// (RFC 7030): the base64 PKCS#10 body of an enrollment request, the
// base64 certs-only PKCS#7 of /cacerts and of an enrollment's answer, and
// the CSR attributes of /csrattrs. It is pure: no HTTP, no CA, no store.
// The server's handlers (internal/server) authenticate, authorize and
// issue through the same pipeline as /v1/enroll; this package only turns
// bytes into requests and certificates into bytes.
package est

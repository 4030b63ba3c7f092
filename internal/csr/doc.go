// Package csr turns an untrusted certificate signing request into an
// issuance [Request], or says exactly why it cannot.
//
// The server side is [ParseAndCheck]: a PEM request of at most [MaxSize]
// bytes whose signature verifies (the client holds the private key), whose
// key is on the keytype allow list, and whose only name is one URI SAN equal
// to the SPIFFE ID the caller grants (from a token or the renewing client's
// certificate). Anything else in the request is either refused (DNS, IP,
// email and other SAN types, which a client could otherwise smuggle into a
// certificate) or ignored: the subject, including its CN, and every other
// requested extension. The CA builds the certificate from the [Request]
// alone and never copies anything else from the CSR.
//
// The client side is [Create], which builds the request the server accepts.
//
// The package is pure: no I/O, no clock, no store. It does not decide which
// identity a caller may have (tokens and the server do) and does not sign.
package csr

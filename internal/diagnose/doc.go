// Package diagnose explains, in plain words, why a certificate chain does or
// does not verify for client authentication against a trust bundle at a given
// time. It backs the `certgate verify` command.
//
// [Diagnose] is one pure function: the time, the bundle, the chain and an
// optional revocation lookup are passed in, and a [Report] comes out. Unlike
// [crypto/x509.Certificate.Verify], which stops at the first error, it
// reports every problem it finds, each with a stable [Reason] code a script
// can branch on (see the Code constants). Its verdict is never more lenient
// than crypto/x509: a report is OK only when x509 verification for
// [crypto/x509.ExtKeyUsageClientAuth] succeeds and no certgate rule (a single
// valid SPIFFE ID in the leaf, the trust domain, revocation) is broken.
//
// It is not the verifier the gateway or the SDK use on the handshake path;
// those verify and fail fast. It reads no files and prints nothing: parsing
// PEM and rendering the report belong to the caller.
package diagnose

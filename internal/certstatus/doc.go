// Package certstatus tells third-party verifiers whether a certgate
// certificate is revoked, in the two standard forms: a CRL (RFC 5280) signed
// by the intermediate, and an OCSP responder (RFC 6960) whose responses are
// signed by a delegated responder certificate, or, when the intermediate's
// key is in a device (PKCS#11), by the intermediate itself so that no key
// vouching for status exists outside the device.
//
// # The revocation view
//
// A [Service] keeps an in-memory copy of the revocations of unexpired
// certificates, loaded from a store snapshot and then advanced with the
// store's ordered events, the same log the gateways follow. It wakes on the
// store's commit notification and also polls (once a second by default), so
// a revocation made through another server replica is seen too.
//
// # CRL
//
// [Service.CRL] returns the current CRL. It is rebuilt whenever the event
// position moved and again halfway to its nextUpdate, so relying parties
// never hold an expired one. Its CRL number is the event position times 2³²
// plus thisUpdate in Unix seconds: it grows with every revocation, with every
// scheduled re-issue, across restarts and across replicas, and two replicas
// at the same position and second produce the same entries.
//
// # OCSP
//
// [Service.Respond] answers one DER OCSP request: good, revoked (with time
// and reason) or unknown (a serial this CA never issued). Requests about
// another CA's certificates get the "unauthorized" error: the responder never
// signs status for other issuers. [ParseRequest] is the strict parser of
// untrusted request bytes; it reads the nonce extension (RFC 8954), which
// golang.org/x/crypto/ocsp ignores, so the nonce is echoed in the response.
// Responses without a nonce are cached per serial and hash algorithm until
// halfway to their nextUpdate; a revocation of that serial invalidates the
// entry at once. The delegated signer is issued through the CA service (so
// the store and the audit log record it) with [ca.OCSPSigningProfile], and
// renewed at two thirds of its life; an issuer whose key is in a device
// ([ca.Issuer.KeyInSoftware] false) signs its responses itself
// ([ca.Issuer.SignOCSP]) and has no delegated signer.
//
// Not here: HTTP (package server maps requests and errors to HTTP), the
// revocation set gateways enforce (package revocation), storage (store).
package certstatus

// Package ca is certgate's certificate authority: it creates the root and
// the online intermediate, and issues leaf certificates from checked CSRs.
//
// Two layers, as in boulder: the [Issuer] is pure (no store, no network): it
// turns a checked request and a [Profile] into a signed certificate, through
// a single-use [Prepared] value so nothing unchecked can be signed. The
// [Service] orchestrates an issuance: check the token and the CSR, sign,
// record the certificate durably with its audit record, and only then return
// it. A certificate whose record failed is never returned.
//
// Not here: parsing CSRs (package csr), PEM and key files (pemutil), storage
// (store), HTTP (server).
package ca

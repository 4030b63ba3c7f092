// Package server is certgate's control plane over HTTPS: the JSON API under
// /v1/ for tokens, enrollment, certificates, revocation, the audit log and
// the revocation data gateways pull, plus the trust bundle and a health
// check.
//
// Authentication is the TLS client certificate: enrollment needs none (the
// token is the credential), admin endpoints need a certificate whose SPIFFE
// path starts with /admin/ (none: 401, another identity: 403), and the
// revocation endpoint also accepts /gateway/ identities. Every error is
// {"error":{"code":"...","message":"..."}} with a message safe to show.
//
// Not here: the request and answer bodies, error codes and paths, which
// clients share (package wire); issuance logic (package ca); storage
// (store).
package server

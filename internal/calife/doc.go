// Package calife is the CA over time: it rotates the intermediate and the
// root in phases, on command or on a schedule, and explains where the CA
// stands ([Manager.Status], "certgate ca status").
//
// # The state
//
// The store holds every CA certificate with a state (next, active,
// retiring, retired, revoked, abandoned) and every rotation with a phase.
// Each step of a rotation is one store transaction ([store.CAChange]) that
// also appends an event, so server replicas, the feed and the CRL/OCSP
// service learn of it in commit order, and a process killed at any point
// leaves a state that the next command (or the server's schedule) resumes:
//
//	intermediate: started -> published -> done
//	root:         started -> prepared -> activated -> finished
//	              (prepared and activated can be rolled back)
//
// # Rotating the intermediate
//
// A new intermediate under the active root is made "next": published (the
// bundle endpoint, the feed) before it signs anything. At its activation
// time (immediately with --now, at --at, or PublishAhead after it was
// made) it becomes active and the old one "retiring": it signs nothing new
// but keeps answering OCSP and publishing its CRL until the last
// certificate it issued has expired (plus one CRL validity), then it is
// retired. The server starts a rotation by itself at RotateAt (2/3) of the
// active intermediate's life.
//
// In an emergency (--revoke-old), the new intermediate is published and
// activated at once and the old one revoked: the root's CRL lists it,
// gateways refuse chains through it, and agents renew under the new one at
// their next check.
//
// # Rotating the root
//
//	prepare:  a new root, cross-signed both ways (the new root's key
//	          certified by the old root and the old root's key by the new
//	          one), and a new intermediate under it, all "next": every
//	          bundle carries both roots from now on.
//	activate: the new intermediate signs, sent with the cross-certificate
//	          so clients that still trust only the old root verify it; the
//	          new root is active, the old one retiring.
//	finish:   once every certificate under the old root has expired, the
//	          old root and the cross-certificates are retired and bundles
//	          drop the old root. Final: it cannot be rolled back.
//
// Each phase is a command or happens at a time the previous one set; each
// is audited. rollback undoes activate (the old intermediate signs again)
// and prepare (the new root is abandoned, once nothing under it is valid).
//
// Not here: certificate contents (package ca), keys (cakey), storage
// (store), serving bundles and status (server, certstatus).
package calife

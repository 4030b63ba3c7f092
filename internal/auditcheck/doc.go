// Package auditcheck checks the server's audit log from outside the
// server, over the API: [Verify] (certgate audit verify) recomputes the
// whole hash chain and checks it against signed checkpoints, so a changed
// record, a deleted one, a tail truncated below a checkpoint and a chain
// edited and hashed again are each found with the first bad record named,
// then asks for certificates and revocations that have no record; a
// [Watcher] (gateways, agents) is a witness: it remembers the newest
// checkpoint it saw and warns when the server shows one that does not
// extend it.
//
// How a witness checks that a newer checkpoint extends the one it
// remembers, given a hash chain (not a Merkle tree, which would give short
// consistency proofs): same size, same hash; a smaller size is a
// truncation; a larger size is an extension only if the records between
// chain from the remembered head to the new one, so a witness that may
// read the log (a gateway: the gateway role reads GET /v1/audit) fetches
// them and recomputes the chain; shown an older checkpoint (a replica that
// signed less recently), it checks the same way that the older leads to
// the one it remembers, and keeps that. One that may not (an agent, a plain
// client) checks what the checkpoints alone show: the key, the signature,
// the size never shrinking, the same size never changing hash, time never
// going back; a rewrite that also grew the log is then left to the
// gateways and to certgate audit verify.
//
// Client side: no store, no server packages (internal/archtest).
package auditcheck

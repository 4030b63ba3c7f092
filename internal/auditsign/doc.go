// Package auditsign anchors the server's audit log outside the database:
// it keeps the audit key (Ed25519, encrypted with the CA passphrase in the
// certgate directory, never in the store) and signs checkpoints of the
// log's hash chain (package audit) as C2SP signed notes (package
// checkpoint): the number of records and the hash of the last one, at a
// time.
//
// A [Checkpointer] signs at least every N records and, when the log grew,
// every T (and on shutdown). Every checkpoint is appended to a file
// outside the store, written as a log line, and served by the server at
// GET /v1/audit/checkpoint, where gateways keep a copy (a witness). Before
// it signs, the checkpointer checks that the records since its newest
// checkpoint chain from it: a store that was truncated or rewritten under
// a running server is reported and never signed over.
//
// Who holds the records and a checkpoint checks the rest: audit.Check
// (certgate audit verify) finds a truncated tail below a checkpoint and a
// chain hashed again after an edit, which the chain alone cannot show.
//
// Not here: the chain's encoding and verifier (package audit), the note
// format (package checkpoint), fetching checkpoints (package auditwitness).
package auditsign

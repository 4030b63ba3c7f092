// Package checkpoint signs and verifies checkpoints: the size and head hash
// of an append-only log at a time, as a C2SP signed note
// (https://c2sp.org/signed-note) in the shape of a C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint), and keeps a witness's memory of the
// last one it saw.
//
// A checkpoint is the log's promise, signed with a key the database does not
// hold, that "my first Size records hash to Hash". Once a copy leaves the
// database (a file, a log line, a gateway's witness file), deleting or
// rewriting records up to Size is detectable by anyone who recomputes the
// head. The note text is
//
//	<origin>
//	<size>
//	<base64 head hash>
//	time <RFC 3339 UTC, nanoseconds>
//
// followed by a blank line and one Ed25519 signature line
// ("— <key name> base64(key ID || signature)"), the key ID being the first
// four bytes of SHA-256(key name || 0x0A || 0x01 || public key). The
// signature is plain Ed25519 (RFC 8032) over the note text, so it verifies
// with any Ed25519 implementation (openssl pkeyutl -verify -rawin) from the
// published public key: see [Signed.Text] and [Signed.Signature].
//
// The head hash is whatever the log says it is: a hash chain's last link
// (the audit log) or a Merkle root. This package does not know how the log
// is hashed; it does not check that a newer checkpoint extends an older one
// beyond what sizes and hashes alone show ([Consistent]). Who holds the
// records checks the rest (certgate audit verify).
//
// What it is not for: encrypting, storing keys (callers load an Ed25519
// crypto.Signer from wherever they keep it), or fetching checkpoints.
package checkpoint

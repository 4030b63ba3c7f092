// Package credsdir keeps one identity's credentials directory from being
// overwritten with another's. certgatetls owns the files and their format;
// this package answers who they belong to ([Inspect]), whether an
// identity may write there ([Check]), moves what is there aside when the
// operator insists ([Backup]), and writes credentials so that a crash
// halfway leaves a directory still recognisable as its identity's
// ([Write]). `certgate enroll`, the agent and the gateway's own identity
// write through it.
//
// # Whose files
//
// A directory belongs to the SPIFFE ID its certificates name (cert.pem,
// the pending chain, combined.pem) and its key.uri's label names (certgate
// labels the keys it makes in a PKCS#11 token; a TPM key has no label and
// goes by the certificate beside it), when they all agree and key.pem
// holds the key of one of those certificates.
// Anything else is "not a certgate identity": a file that does not parse,
// a key that fits no certificate beside it, a key alone (a key names no
// identity, so whose it is cannot be told), a symbolic link (certgate
// would replace the link, not what it points to), a bundle or server.url
// without any certificate. Only the files of a credentials directory are
// judged; other files in it are neither judged nor moved.
//
// # Interrupted writes
//
// [Write] first puts the new chain in cert.pem.pending, then lets
// certgatetls replace key.pem, cert.pem and bundle.pem, and removes the
// pending chain last. A crash at any point leaves either the old set, or
// a key that belongs to the pending chain beside it: the directory is
// still its identity's, and enrolling that identity again proceeds
// without --force; the agent finishes such a write when it starts
// ([Complete]). A key.pem alone with no pending chain (what certgate
// before this package could leave, or any other tool) names nobody and is
// refused; --force keeps it in the backup.
//
// It is not the format (certgatetls), nor the policy of who may enroll
// what (the server's).
package credsdir

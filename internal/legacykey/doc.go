// Package legacykey is how certgate carries static API keys across a
// migration to certificates: a key is a time-boxed identity
// (spiffe://TD/legacy/NAME) that a gateway accepts only on routes that opt
// in, until a sunset.
//
// It holds the pure parts: the import file format and its checks
// ([ParseFile]: names, duplicates, entropy, each refusal with its line),
// the salted hash a key is known by ([Hash]), and the in-memory set a
// gateway checks a presented key against ([Set]). Key material never
// leaves this package in an error message, and only its hash is kept.
//
// # The hash and the salt
//
// A key is stored and sent to gateways as SHA-256(salt || key) only. Keys
// carry at least 128 bits of entropy (ParseFile refuses less), so the hash
// cannot be searched for the key; the salt, one per installation, kept in
// the store (table legacy_key_salt, created at the first import) and sent
// to gateways with the set over the change feed, stops one precomputed
// table from serving every installation and keeps the same key in two
// installations from having the same hash. The salt is not a secret.
//
// # Constant time
//
// [Set.Lookup] hashes the presented key (time depends on its length
// only), finds the candidate by the hash's first 8 bytes and compares all
// 32 bytes with crypto/subtle against the candidate, or against a dummy
// when there is none, so a wrong key and a right one do the same work.
// What the probe of the index can reveal is whether the salted hash of a
// key the caller chose is in the set, which the answer says anyway; a key
// cannot be guessed byte by byte, since the caller controls the key and
// not its hash.
package legacykey

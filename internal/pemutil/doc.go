// Package pemutil moves certificates, certificate requests and private keys
// in and out of PEM, strictly.
//
// Parsing is meant for bytes that may come from anyone: input larger than
// [MaxSize] is refused before it is looked at, and so is anything that is not
// exactly the expected PEM blocks separated by whitespace (text before or
// after the blocks, blocks of another type, PEM headers, malformed blocks).
// Every refusal is an error prefixed "pemutil: " that says which rule failed.
//
// Private keys at rest are PKCS#8. [EncryptPrivateKey] writes the RFC 5958
// EncryptedPrivateKeyInfo that openssl reads ("ENCRYPTED PRIVATE KEY"):
// PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC. [DecryptPrivateKey] reads
// that and what openssl writes with -v2 (PBES2, PBKDF2 with any RFC 8018
// HMAC, AES-CBC), and names anything older or different (PBES1, PKCS#12
// PBE, scrypt, DES, RC2) in its error instead of guessing.
//
// This package does not decide whether a key type is allowed (see keytype),
// does not check CSR signatures or identities (see csr) and does not verify
// chains; it only converts between bytes and Go values.
package pemutil

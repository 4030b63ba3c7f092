// Package cakey keeps the CA's private keys and says where each one is,
// as the key URI recorded with its certificate (store.CACert.KeyURI):
//
//   - "file:PATH": an encrypted PKCS#8 PEM file (package pemutil) in the
//     certgate directory, as "certgate init" writes the first root and
//     intermediate keys;
//   - "sealed:": the same encrypted PEM kept in the store row itself, as
//     rotations make them, so every server replica sharing the store can
//     load a key one of them made;
//   - "pkcs11:...": a key inside a PKCS#11 token (an HSM, SoftHSM2),
//     addressed by an RFC 7512 URI with the module path and the PIN's
//     source in its query. Such a key is generated in the token as
//     sensitive and not extractable (CKA_SENSITIVE true, CKA_EXTRACTABLE
//     false): it never exists outside the token, and signing is done by
//     the token (github.com/ThalesGroup/crypto11).
//
// The passphrase decrypts file and sealed keys; it and the PIN are never
// logged, and a PIN is never written into a URI this package makes (only
// where to read it from).
//
// PKCS#11 needs cgo (the module is a C library loaded at run time); a
// certgate built without cgo refuses pkcs11: URIs with an error saying so.
//
// Not here: which key signs what (package ca), the rotation that asks for
// a new key (package calife).
package cakey

// Package credexport writes a client's credentials (its private key and
// certificate chain) as one file in the format another stack wants: PEM
// (the key, then the chain) or PKCS#12 for browsers, Java, .NET and curl's
// --cert-type P12. It only encodes: where the credentials come from (a
// credentials directory, the admin's files) and where the file goes is its
// caller's business. It is not a key store: a key held in a device
// (PKCS#11, TPM) is refused, since it never leaves that device.
package credexport

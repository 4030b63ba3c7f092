// Package devicekey keeps a client's private key inside a device: a
// PKCS#11 token (an HSM, a smart card, SoftHSM2) named by an RFC 7512 URI,
// or a TPM 2.0 named by a tpm: URI (see [TPMScheme]: a device such as
// /dev/tpmrm0, or a simulator such as swtpm).
// Generate makes the key in the device, sensitive and never extractable;
// Load finds it again by the URI Generate returned, which is what a
// credentials directory records (key.uri) instead of the key; Delete
// removes it once a renewal has replaced it. The key never leaves the
// device: what this package hands out is a crypto.Signer that asks the
// device to sign.
//
// PKCS#11 modules are C libraries: without cgo every function reports
// that this build cannot use them. TPMs are spoken to in Go and work in
// every build.
package devicekey

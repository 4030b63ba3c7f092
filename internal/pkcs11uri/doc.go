// Package pkcs11uri parses and formats RFC 7512 PKCS#11 URIs strictly:
// the module to load, the token, the key in it and where its PIN comes
// from, and reads that PIN. It is shared by the CA's keys (internal/cakey)
// and clients' keys (internal/devicekey); it loads no module itself.
package pkcs11uri

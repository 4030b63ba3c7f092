-- certgate store schema, version 6 (PostgreSQL): no index on
-- certificates.fingerprint. Nothing looks a certificate up by its
-- fingerprint, and its uniqueness follows from the serial's (the
-- fingerprint is the SHA-256 of the DER, which holds the serial). The
-- UNIQUE index cost every issuance an insert at a random place of a
-- b-tree.

ALTER TABLE certificates DROP CONSTRAINT certificates_fingerprint_key;

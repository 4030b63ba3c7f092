-- certgate store schema, version 6 (SQLite): no index on
-- certificates.fingerprint. Nothing looks a certificate up by its
-- fingerprint, and its uniqueness follows from the serial's (the
-- fingerprint is the SHA-256 of the DER, which holds the serial). The
-- UNIQUE index cost every issuance an insert at a random place of a
-- b-tree: a page of its own written to the WAL, and its splits.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is built
-- again. Foreign keys are enforced on this connection and cannot be turned
-- off inside the migration's transaction, so revocations (the one table
-- that references certificates) is built again with it: renaming a parent
-- table rewrites its children's REFERENCES, dropping it with children
-- left would fail.

ALTER TABLE revocations RENAME TO revocations_v5;
ALTER TABLE certificates RENAME TO certificates_v5;

CREATE TABLE certificates (
    serial       TEXT    NOT NULL PRIMARY KEY,
    identity     TEXT    NOT NULL,
    common_name  TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,
    key_type     TEXT    NOT NULL,
    obtained     TEXT    NOT NULL,
    renewed_from TEXT    NOT NULL DEFAULT '',
    token_id     TEXT    NOT NULL DEFAULT '',
    issued_at    INTEGER NOT NULL,
    der          BLOB    NOT NULL,
    issuer       TEXT    NOT NULL DEFAULT ''
);
INSERT INTO certificates (serial, identity, common_name, fingerprint, not_before, not_after,
    key_type, obtained, renewed_from, token_id, issued_at, der, issuer)
SELECT serial, identity, common_name, fingerprint, not_before, not_after,
    key_type, obtained, renewed_from, token_id, issued_at, der, issuer
FROM certificates_v5 ORDER BY rowid;

CREATE TABLE revocations (
    serial     TEXT    NOT NULL PRIMARY KEY REFERENCES certificates (serial),
    reason     INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    revoked_by TEXT    NOT NULL
);
INSERT INTO revocations (serial, reason, revoked_at, revoked_by)
SELECT serial, reason, revoked_at, revoked_by FROM revocations_v5 ORDER BY rowid;

DROP TABLE revocations_v5;
DROP TABLE certificates_v5;

CREATE INDEX certificates_identity ON certificates (identity, not_after);
CREATE INDEX certificates_issued_at ON certificates (issued_at, serial);
CREATE INDEX certificates_issuer ON certificates (issuer, not_after);

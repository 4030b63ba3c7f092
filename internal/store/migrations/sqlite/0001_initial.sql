-- certgate store schema, version 1 (SQLite).
-- Times are UTC unix nanoseconds (INTEGER); empty strings mean "none".

CREATE TABLE certificates (
    serial       TEXT    NOT NULL PRIMARY KEY,
    identity     TEXT    NOT NULL,
    common_name  TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL UNIQUE,
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,
    key_type     TEXT    NOT NULL,
    obtained     TEXT    NOT NULL,
    renewed_from TEXT    NOT NULL DEFAULT '',
    token_id     TEXT    NOT NULL DEFAULT '',
    issued_at    INTEGER NOT NULL,
    der          BLOB    NOT NULL
);
CREATE INDEX certificates_identity ON certificates (identity, not_after);
CREATE INDEX certificates_issued_at ON certificates (issued_at, serial);

CREATE TABLE tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash BLOB    NOT NULL,
    identity    TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER,
    serial      TEXT
);

CREATE TABLE revocations (
    serial     TEXT    NOT NULL PRIMARY KEY REFERENCES certificates (serial),
    reason     INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    revoked_by TEXT    NOT NULL
);

-- position is assigned by the single writer under its lock: max + 1, so
-- positions have no gaps and follow commit order.
CREATE TABLE events (
    position  INTEGER NOT NULL PRIMARY KEY,
    time      INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    serial    TEXT    NOT NULL,
    identity  TEXT    NOT NULL,
    reason    INTEGER NOT NULL,
    not_after INTEGER NOT NULL
);

CREATE TABLE audit (
    seq       INTEGER NOT NULL PRIMARY KEY,
    time      INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
);

-- certgate store schema, version 1 (PostgreSQL).
-- Times are UTC unix nanoseconds (BIGINT); empty strings mean "none".
-- Constraint names are relied upon by postgres.go to map unique violations.

CREATE TABLE certificates (
    serial       TEXT   NOT NULL,
    identity     TEXT   NOT NULL,
    common_name  TEXT   NOT NULL,
    fingerprint  TEXT   NOT NULL,
    not_before   BIGINT NOT NULL,
    not_after    BIGINT NOT NULL,
    key_type     TEXT   NOT NULL,
    obtained     TEXT   NOT NULL,
    renewed_from TEXT   NOT NULL DEFAULT '',
    token_id     TEXT   NOT NULL DEFAULT '',
    issued_at    BIGINT NOT NULL,
    der          BYTEA  NOT NULL,
    CONSTRAINT certificates_pkey PRIMARY KEY (serial),
    CONSTRAINT certificates_fingerprint_key UNIQUE (fingerprint)
);
CREATE INDEX certificates_identity ON certificates (identity, not_after);
CREATE INDEX certificates_issued_at ON certificates (issued_at, serial);

CREATE TABLE tokens (
    id          TEXT   NOT NULL,
    secret_hash BYTEA  NOT NULL,
    identity    TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    redeemed_at BIGINT,
    serial      TEXT,
    CONSTRAINT tokens_pkey PRIMARY KEY (id)
);

CREATE TABLE revocations (
    serial     TEXT    NOT NULL,
    reason     INTEGER NOT NULL,
    revoked_at BIGINT  NOT NULL,
    revoked_by TEXT    NOT NULL,
    CONSTRAINT revocations_pkey PRIMARY KEY (serial),
    CONSTRAINT revocations_serial_fkey FOREIGN KEY (serial) REFERENCES certificates (serial)
);

-- position is assigned by the writer holding the store's advisory lock:
-- max + 1, so positions have no gaps and follow commit order across replicas.
CREATE TABLE events (
    position  BIGINT  NOT NULL,
    time      BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    serial    TEXT    NOT NULL,
    identity  TEXT    NOT NULL,
    reason    INTEGER NOT NULL,
    not_after BIGINT  NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (position)
);

CREATE TABLE audit (
    seq       BIGINT NOT NULL,
    time      BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash BYTEA  NOT NULL,
    hash      BYTEA  NOT NULL,
    CONSTRAINT audit_pkey PRIMARY KEY (seq)
);

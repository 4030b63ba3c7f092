-- certgate store schema, version 2 (PostgreSQL): the CA over time.
-- Every certificate and every revocation event names its issuer (the hex
-- subject key identifier of the CA key that signed it); the CA certificates
-- themselves (roots, intermediates, cross-certificates), their states, and
-- the phased rotations that move between them are rows too.

ALTER TABLE certificates ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
CREATE INDEX certificates_issuer ON certificates (issuer, not_after);

ALTER TABLE events ADD COLUMN issuer TEXT NOT NULL DEFAULT '';

CREATE TABLE ca_certificates (
    fingerprint   TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    issuer_key_id TEXT    NOT NULL,
    generation    INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    not_before    BIGINT  NOT NULL,
    not_after     BIGINT  NOT NULL,
    key_type      TEXT    NOT NULL,
    key_uri       TEXT    NOT NULL DEFAULT '',
    sealed_key    BYTEA,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    revoked_at    BIGINT,
    reason        INTEGER NOT NULL DEFAULT 0,
    der           BYTEA   NOT NULL,
    CONSTRAINT ca_certificates_pkey PRIMARY KEY (fingerprint)
);
CREATE INDEX ca_certificates_key_id ON ca_certificates (key_id);

CREATE TABLE ca_rotations (
    id               BIGINT  NOT NULL,
    kind             TEXT    NOT NULL,
    phase            TEXT    NOT NULL,
    emergency        INTEGER NOT NULL DEFAULT 0,
    reason           INTEGER NOT NULL DEFAULT 0,
    old_key_id       TEXT    NOT NULL DEFAULT '',
    new_key_id       TEXT    NOT NULL DEFAULT '',
    new_intermediate TEXT    NOT NULL DEFAULT '',
    key_label        TEXT    NOT NULL DEFAULT '',
    due_at           BIGINT  NOT NULL DEFAULT 0,
    started_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    started_by       TEXT    NOT NULL,
    CONSTRAINT ca_rotations_pkey PRIMARY KEY (id)
);

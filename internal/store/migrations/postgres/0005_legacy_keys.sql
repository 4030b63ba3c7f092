-- certgate store schema, version 5: legacy static API keys as time-boxed
-- identities (internal/legacykey). A key is kept only as SHA-256 of the
-- installation's salt and the key; the salt is the one row of
-- legacy_key_salt, made at the first import. Each key maps to the identity
-- spiffe://TD/legacy/NAME until its sunset; revoked keys stay, with who and
-- when. legacy_key_usage counts the requests made with a key, per route
-- and source host, from the gateways' usage reports.

CREATE TABLE legacy_key_salt (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    salt       BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);

CREATE TABLE legacy_keys (
    name              TEXT   NOT NULL PRIMARY KEY,
    identity          TEXT   NOT NULL,
    key_hash          BYTEA  NOT NULL UNIQUE,
    created_by        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    sunset            BIGINT NOT NULL,
    revoked_at        BIGINT NOT NULL DEFAULT 0,
    revoked_by        TEXT   NOT NULL DEFAULT '',
    revoke_reason     TEXT   NOT NULL DEFAULT '',
    migrate_token     TEXT   NOT NULL DEFAULT '',
    migrated_at       BIGINT NOT NULL DEFAULT 0,
    migrated_by       TEXT   NOT NULL DEFAULT '',
    auto_revoke_grace BIGINT NOT NULL DEFAULT 0,
    cert_first_seen   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX legacy_keys_identity ON legacy_keys (identity);

CREATE TABLE legacy_key_usage (
    name      TEXT   NOT NULL,
    route     TEXT   NOT NULL,
    source    TEXT   NOT NULL,
    requests  BIGINT NOT NULL DEFAULT 0,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (name, route, source)
);

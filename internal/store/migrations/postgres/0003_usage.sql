-- certgate store schema, version 3 (postgres): usage reported by gateways.
-- Counts per identity, route and UTC day; the last time and source host
-- per identity and per certificate; the IDs of the reports already
-- recorded, so that a gateway's retry is never counted twice.

CREATE TABLE usage_daily (
    identity  TEXT    NOT NULL,
    route     TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    req_none  BIGINT NOT NULL DEFAULT 0,
    req_1xx   BIGINT NOT NULL DEFAULT 0,
    req_2xx   BIGINT NOT NULL DEFAULT 0,
    req_3xx   BIGINT NOT NULL DEFAULT 0,
    req_4xx   BIGINT NOT NULL DEFAULT 0,
    req_5xx   BIGINT NOT NULL DEFAULT 0,
    bytes_in  BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (identity, route, day)
);
CREATE INDEX usage_daily_day ON usage_daily (day);

CREATE TABLE usage_identities (
    identity    TEXT    NOT NULL PRIMARY KEY,
    last_seen   BIGINT NOT NULL,
    last_source TEXT    NOT NULL DEFAULT '',
    last_route  TEXT    NOT NULL DEFAULT '',
    requests    BIGINT NOT NULL DEFAULT 0,
    sharing_at  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE usage_certificates (
    serial      TEXT    NOT NULL PRIMARY KEY,
    identity    TEXT    NOT NULL,
    last_seen   BIGINT NOT NULL,
    last_source TEXT    NOT NULL DEFAULT '',
    requests    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE usage_reports (
    id          TEXT    NOT NULL PRIMARY KEY,
    gateway     TEXT    NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX usage_reports_received ON usage_reports (received_at);

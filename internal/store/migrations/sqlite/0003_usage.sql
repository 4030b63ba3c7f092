-- certgate store schema, version 3 (sqlite): usage reported by gateways.
-- Counts per identity, route and UTC day; the last time and source host
-- per identity and per certificate; the IDs of the reports already
-- recorded, so that a gateway's retry is never counted twice.

CREATE TABLE usage_daily (
    identity  TEXT    NOT NULL,
    route     TEXT    NOT NULL,
    day       TEXT    NOT NULL,
    req_none  INTEGER NOT NULL DEFAULT 0,
    req_1xx   INTEGER NOT NULL DEFAULT 0,
    req_2xx   INTEGER NOT NULL DEFAULT 0,
    req_3xx   INTEGER NOT NULL DEFAULT 0,
    req_4xx   INTEGER NOT NULL DEFAULT 0,
    req_5xx   INTEGER NOT NULL DEFAULT 0,
    bytes_in  INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (identity, route, day)
);
CREATE INDEX usage_daily_day ON usage_daily (day);

CREATE TABLE usage_identities (
    identity    TEXT    NOT NULL PRIMARY KEY,
    last_seen   INTEGER NOT NULL,
    last_source TEXT    NOT NULL DEFAULT '',
    last_route  TEXT    NOT NULL DEFAULT '',
    requests    INTEGER NOT NULL DEFAULT 0,
    sharing_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE usage_certificates (
    serial      TEXT    NOT NULL PRIMARY KEY,
    identity    TEXT    NOT NULL,
    last_seen   INTEGER NOT NULL,
    last_source TEXT    NOT NULL DEFAULT '',
    requests    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE usage_reports (
    id          TEXT    NOT NULL PRIMARY KEY,
    gateway     TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX usage_reports_received ON usage_reports (received_at);

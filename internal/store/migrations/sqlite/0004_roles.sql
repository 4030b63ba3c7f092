-- certgate store schema, version 4: roles are data. A grant names a role
-- (admin, auditor, gateway, issuer), the identity or identity pattern that
-- holds it, and for issuer the identity pattern it acts on. Before this
-- version a role was read from an identity's path (/admin/, /gateway/);
-- this migration (with its Go step, store/roles.go legacyGrants) grants
-- those prefixes explicitly, with an audit record for each, so an existing
-- installation keeps working and says why.

CREATE TABLE role_grants (
    role       TEXT   NOT NULL,
    holder     TEXT   NOT NULL,
    scope      TEXT   NOT NULL DEFAULT '',
    granted_by TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (role, holder, scope)
);

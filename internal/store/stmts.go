package store

// stmtID names a statement the writer prepares once at open.
type stmtID int

const (
	stSavepoint stmtID = iota
	stRollbackTo
	stRelease
	stHeads
	stAuditInsert
	stEventInsert
	stTokenInsert
	stTokenRedeem
	stTokenRedeemReturning
	stTokenRedeemMatching
	stTokenState
	stCertInsert
	stCertForRevoke
	stRevocationInsert
	stTokenCheck
	stCertForRenew
	stIssuersInactive
	stUsageReport
	stUsagePrune
	stUsageDaily
	stUsageIdentity
	stUsageCert
	stRoleGrants
	numStmts
)

// stmtText is written with '?' placeholders; each dialect rebinds it.
var stmtText = [numStmts]string{
	stSavepoint:  `SAVEPOINT op`,
	stRollbackTo: `ROLLBACK TO SAVEPOINT op`,
	stRelease:    `RELEASE SAVEPOINT op`,
	// The event head, and the audit head (NULL, NULL before the first
	// record), in one row: one statement per transaction instead of two.
	stHeads: `SELECT (SELECT COALESCE(MAX(position), 0) FROM events),
		(SELECT seq FROM audit ORDER BY seq DESC LIMIT 1),
		(SELECT hash FROM audit ORDER BY seq DESC LIMIT 1)`,
	stAuditInsert: `INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	stEventInsert: `INSERT INTO events (position, time, kind, serial, identity, reason, not_after, issuer)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	stTokenInsert: `INSERT INTO tokens (id, secret_hash, identity, created_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
	// The redemption is one atomic UPDATE: whoever flips redeemed_at from
	// NULL wins; everyone else affects no row.
	stTokenRedeem: `UPDATE tokens SET redeemed_at = ?, serial = ?
		WHERE id = ? AND redeemed_at IS NULL AND expires_at > ?`,
	// The same redemption, answering the token's secret hash and identity:
	// an enrollment checks them after the row is flipped, and a mismatch
	// fails the operation, which rolls the redemption back with it.
	stTokenRedeemReturning: `UPDATE tokens SET redeemed_at = ?, serial = ?
		WHERE id = ? AND redeemed_at IS NULL AND expires_at > ?
		RETURNING secret_hash, identity`,
	// The same redemption, only if the token's secret hash (unless the
	// presented one is NULL) and identity (unless the presented one is
	// empty) are the ones presented; the hash compared by
	// certgate_hash_equal, in constant time (SQLite only: sqliteHashEqual,
	// not prepared on other dialects). A mismatch redeems nothing.
	// Arguments: now, serial, id, now, hash, hash, identity, identity.
	stTokenRedeemMatching: `UPDATE tokens SET redeemed_at = ?, serial = ?
		WHERE id = ? AND redeemed_at IS NULL AND expires_at > ?
		AND (? IS NULL OR ` + sqliteHashEqualName + `(secret_hash, ?)) AND (? = '' OR identity = ?)`,
	stTokenState: `SELECT expires_at, redeemed_at FROM tokens WHERE id = ?`,
	stCertInsert: `INSERT INTO certificates (serial, identity, common_name, fingerprint,
		not_before, not_after, key_type, obtained, renewed_from, token_id, issued_at, der, issuer)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	stCertForRevoke: `SELECT c.identity, c.not_after, c.issuer, r.serial
		FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
		WHERE c.serial = ?`,
	stRevocationInsert: `INSERT INTO revocations (serial, reason, revoked_at, revoked_by)
		VALUES (?, ?, ?, ?)`,
	stTokenCheck: `SELECT secret_hash, identity FROM tokens WHERE id = ?`,
	stIssuersInactive: `SELECT key_id, state FROM ca_certificates
		WHERE kind = 'intermediate' AND state NOT IN ('active', 'retiring')`,
	// A report ID is inserted first: a retried report affects no row and
	// changes nothing else.
	stUsageReport: `INSERT INTO usage_reports (id, gateway, received_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
	stUsagePrune: `DELETE FROM usage_reports WHERE received_at < ?`,
	stUsageDaily: `INSERT INTO usage_daily (identity, route, day, req_none, req_1xx, req_2xx, req_3xx, req_4xx, req_5xx,
		bytes_in, bytes_out, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (identity, route, day) DO UPDATE SET
		req_none = usage_daily.req_none + excluded.req_none, req_1xx = usage_daily.req_1xx + excluded.req_1xx,
		req_2xx = usage_daily.req_2xx + excluded.req_2xx, req_3xx = usage_daily.req_3xx + excluded.req_3xx,
		req_4xx = usage_daily.req_4xx + excluded.req_4xx, req_5xx = usage_daily.req_5xx + excluded.req_5xx,
		bytes_in = usage_daily.bytes_in + excluded.bytes_in, bytes_out = usage_daily.bytes_out + excluded.bytes_out,
		last_seen = CASE WHEN excluded.last_seen > usage_daily.last_seen THEN excluded.last_seen ELSE usage_daily.last_seen END`,
	// Reports from several gateways arrive in any order: the last use only
	// moves forward.
	stUsageIdentity: `INSERT INTO usage_identities (identity, last_seen, last_source, last_route, requests, sharing_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (identity) DO UPDATE SET
		last_source = CASE WHEN excluded.last_seen >= usage_identities.last_seen THEN excluded.last_source ELSE usage_identities.last_source END,
		last_route = CASE WHEN excluded.last_seen >= usage_identities.last_seen THEN excluded.last_route ELSE usage_identities.last_route END,
		last_seen = CASE WHEN excluded.last_seen > usage_identities.last_seen THEN excluded.last_seen ELSE usage_identities.last_seen END,
		requests = usage_identities.requests + excluded.requests,
		sharing_at = CASE WHEN excluded.sharing_at > usage_identities.sharing_at THEN excluded.sharing_at ELSE usage_identities.sharing_at END`,
	stUsageCert: `INSERT INTO usage_certificates (serial, identity, last_seen, last_source, requests) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (serial) DO UPDATE SET
		last_source = CASE WHEN excluded.last_seen >= usage_certificates.last_seen THEN excluded.last_source ELSE usage_certificates.last_source END,
		last_seen = CASE WHEN excluded.last_seen > usage_certificates.last_seen THEN excluded.last_seen ELSE usage_certificates.last_seen END,
		requests = usage_certificates.requests + excluded.requests`,
	stRoleGrants: `SELECT role, holder, scope, granted_by, granted_at FROM role_grants ORDER BY role, holder, scope`,
	stCertForRenew: `SELECT c.fingerprint, c.not_after, r.serial
		FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
		WHERE c.serial = ?`,
}

// readStmtID names a read prepared once on the read pool: the reads on the
// path of every enrollment (the token), every authenticated request (the
// caller's certificate) and every issuance and authenticated request (the
// role grants, which pick the certificate profile and the caller's rights).
// Parsing and planning the SQL again on each call cost as much as running
// it: for the role grants, 45 of the 75 µs an enrollment spent on them.
type readStmtID int

const (
	rsToken readStmtID = iota
	rsCertificate
	rsRoleGrants
	numReadStmts
)

// readStmtText is written with '?' placeholders; each dialect rebinds it.
var readStmtText = [numReadStmts]string{
	rsToken: `SELECT id, secret_hash, identity, created_by, created_at, expires_at, redeemed_at, serial
		FROM tokens WHERE id = ?`,
	rsCertificate: `SELECT ` + certColumns + certFrom + ` WHERE c.serial = ?`,
	rsRoleGrants:  `SELECT role, holder, scope, granted_by, granted_at FROM role_grants ORDER BY role, holder, scope`,
}

// certColumns is the select list scanned by scanCertificate.
const certColumns = `c.serial, c.identity, c.common_name, c.fingerprint, c.not_before,
	c.not_after, c.key_type, c.obtained, c.renewed_from, c.token_id, c.issued_at, c.der, c.issuer,
	r.reason, r.revoked_at, r.revoked_by`

// certFrom joins each certificate with its revocation, if any.
const certFrom = ` FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial`

// identityPrefixCond matches an identity that is the prefix itself or
// continues it after a "/" (a path-segment boundary). It compares with
// substr rather than LIKE, so '%' and '_' in the prefix are plain
// characters. Arguments: prefix, rune length of prefix+"/", prefix+"/".
const identityPrefixCond = `(c.identity = ? OR substr(c.identity, 1, ?) = ?)`

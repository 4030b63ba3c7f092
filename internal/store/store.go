// Package store keeps everything certgate must never lose: the certificates
// it issued, revocations, enrollment tokens (hashed), the ordered event log
// that gateways follow, and the audit log.
//
// There is one [Store] interface and one database/sql implementation with a
// dialect per backend: SQLite (embedded default) and PostgreSQL. Migrations
// are versioned and embedded. Every backend passes the conformance suite in
// store/storetest.
//
// Durability contract: a method that changes state returns nil only after the
// change is committed durably. A method that fails changes nothing. Callers
// hand out a certificate only after [Store.RecordIssuance] returned nil.
//
// Client private keys are never stored; tokens are stored as a hash of their
// secret only.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// Sentinel errors callers branch on. Implementations wrap them with context.
var (
	ErrNotFound        = errors.New("not found")
	ErrTokenUsed       = errors.New("token already redeemed")
	ErrTokenExpired    = errors.New("token expired")
	ErrDuplicateSerial = errors.New("serial already exists")
	ErrDuplicateToken  = errors.New("token ID already exists")
	// ErrTokenMismatch: the token exists but its secret or identity is not
	// the one the issuance presented (Issuance.TokenSecretHash,
	// TokenIdentity). Callers answer as for an unknown token.
	ErrTokenMismatch = errors.New("token secret or identity does not match")
	// ErrRevoked and ErrExpired: the certificate an issuance renews
	// (Issuance.RenewedFingerprint) is revoked, or expired.
	ErrRevoked = errors.New("certificate revoked")
	ErrExpired = errors.New("certificate expired")
	// ErrIssuerInactive: the certificate to record names an issuer the
	// store records as an intermediate that may not sign (next, retired,
	// revoked, abandoned): the caller's view of the CA is stale.
	ErrIssuerInactive = errors.New("issuer may not sign")
	// ErrRolesChanged: the role grants no longer give the certificate's
	// identity the role its profile was chosen for (Issuance.GatewayRole):
	// the caller's copy of the grants is stale.
	ErrRolesChanged = errors.New("role grants changed")
	// ErrUnavailable wraps failures to reach or use the database (connection
	// refused, disk I/O error, database locked past the timeout). The server
	// maps it to 503.
	ErrUnavailable = errors.New("store unavailable")
)

// How a certificate was obtained (Certificate.Obtained).
const (
	ObtainedInit   = "init"   // the admin certificate made by certgate init
	ObtainedEnroll = "enroll" // redeemed an enrollment token
	ObtainedRenew  = "renew"  // renewed over mTLS
	ObtainedServer = "server" // a server's own serving certificate
	// ObtainedBootstrap: enrolled over EST (RFC 7030) by a device that
	// authenticated with a bootstrap certificate of a configured CA.
	ObtainedBootstrap = "bootstrap"
)

// Certificate is the record of one issued certificate.
type Certificate struct {
	Serial      string // lowercase hex of the serial number, no leading zeros
	Identity    string // SPIFFE ID
	CommonName  string
	Fingerprint string // lowercase hex SHA-256 of DER
	NotBefore   time.Time
	NotAfter    time.Time
	KeyType     string // keytype.Type
	Obtained    string // one of the Obtained constants
	RenewedFrom string // serial of the certificate this renewed, or ""
	TokenID     string // token redeemed for it, or ""
	IssuedAt    time.Time
	DER         []byte
	// Issuer is the lowercase hex subject key identifier of the CA key
	// that signed it (the certificate's authority key identifier): which
	// intermediate answers OCSP and lists it on its CRL.
	Issuer string

	// Revocation is filled by reads; nil when the certificate is not revoked.
	Revocation *Revocation
}

// Token is an enrollment token as stored: never its secret, only its hash.
type Token struct {
	ID         string // public, unique
	SecretHash []byte // SHA-256 of the secret
	Identity   string // the only identity it may enroll
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RedeemedAt time.Time // zero while unused
	Serial     string    // the certificate it was redeemed for, or ""
}

// Revocation records that a certificate was revoked.
type Revocation struct {
	Serial    string
	Reason    int // RFC 5280 CRLReason code
	RevokedAt time.Time
	RevokedBy string
}

// Event kinds in the ordered event log.
const (
	EventRevoke = "revoke"
	// EventCA says the CA certificates changed (one was added, changed
	// state or was revoked); Serial is the CA certificate's fingerprint.
	// Followers read the CA set again ([Store.ListCAs]).
	EventCA = "ca"
)

// Event is one entry of the ordered event log that gateways follow.
type Event struct {
	Position int64 // strictly increasing, one total order
	Time     time.Time
	Kind     string // EventRevoke or EventCA
	Serial   string // of the revoked certificate; the fingerprint of the CA certificate for EventCA
	Identity string
	Reason   int
	NotAfter time.Time // of the certificate, so followers can forget it after expiry
	// Issuer is the key ID of the certificate's issuer (Certificate.Issuer).
	Issuer string
}

// Issuance is one certificate to record, optionally redeeming a token.
type Issuance struct {
	Cert Certificate
	// TokenID, if set, is redeemed in the same transaction. It must exist
	// (ErrNotFound), be unused (ErrTokenUsed) and unexpired at Now
	// (ErrTokenExpired); then it is marked redeemed for Cert.Serial.
	TokenID string
	// TokenSecretHash and TokenIdentity, if set (with TokenID), are checked
	// against the token's row in the same transaction, before it is
	// redeemed: the hash in constant time, then the identity; either
	// differing is ErrTokenMismatch. So a caller need not read the token
	// first: it checks the CSR against the identity the token claims, signs,
	// and the transaction refuses the certificate if the claim was false.
	TokenSecretHash []byte
	TokenIdentity   string
	// RenewedFingerprint, if set, makes the transaction check the
	// certificate being renewed, Cert.RenewedFrom: it must be recorded with
	// this fingerprint (ErrNotFound), not revoked (ErrRevoked) and unexpired
	// at Now (ErrExpired). Checked under the write lock, a revocation that
	// commits first always wins over the renewal.
	RenewedFingerprint string
	// GatewayRole, if set, makes the transaction check that the role
	// grants give Cert.Identity the gateway role (true) or not (false):
	// the caller chose the certificate's profile by role from grants it may
	// have read earlier, and this check, under the write lock, makes that
	// choice as good as one read in the recording transaction. If the grants
	// say otherwise it is ErrRolesChanged and nothing is written.
	GatewayRole *bool
	Now         time.Time
	Audit       audit.Entry // appended in the same transaction
}

// RevokeRequest selects certificates to revoke. Exactly one of Serial,
// Identity, IdentityPrefix is set.
type RevokeRequest struct {
	Serial string // that one certificate; ErrNotFound if unknown
	// Identity revokes every current (unexpired at Now, unrevoked)
	// certificate of that identity.
	Identity string
	// IdentityPrefix revokes every current certificate whose identity is the
	// prefix itself or starts with prefix + "/" (segment boundary:
	// "spiffe://td/host/a" does not match "spiffe://td/host/ab").
	IdentityPrefix string
	Reason         int
	By             string
	Now            time.Time
}

// CertFilter narrows ListCertificates. Zero fields do not filter.
type CertFilter struct {
	Identity       string
	IdentityPrefix string // same segment-boundary rule as RevokeRequest
	// Status is "", "valid" (unexpired at Now and unrevoked), "revoked" or
	// "expired" (NotAfter before Now and unrevoked).
	Status string
	Now    time.Time
	Limit  int // 0 means no limit
}

// Snapshot is a consistent view of what is revoked, for a follower that
// starts from nothing: every revocation of a certificate unexpired at Now,
// and the event position it is current up to.
type Snapshot struct {
	Position int64
	Revoked  []Event // Kind EventRevoke, ordered by Position
}

// Store is the durable state of certgate. All methods are safe for
// concurrent use.
type Store interface {
	// CreateToken stores a new token and its audit record atomically.
	CreateToken(ctx context.Context, t Token, a audit.Entry) error
	// GetToken returns the token with that ID, or ErrNotFound.
	GetToken(ctx context.Context, id string) (Token, error)

	// RecordIssuance records an issued certificate (and redeems a token)
	// durably, with its audit record. On any error nothing is written.
	RecordIssuance(ctx context.Context, is Issuance) error
	// GetCertificate returns the certificate with that serial, or ErrNotFound.
	GetCertificate(ctx context.Context, serial string) (Certificate, error)
	// ListCertificates returns certificates ordered by IssuedAt, then Serial.
	ListCertificates(ctx context.Context, f CertFilter) ([]Certificate, error)

	// Revoke revokes what req selects in one transaction: a revocation row, an
	// EventRevoke event and an audit record (action cert.revoke, subject the
	// serial) per certificate. It returns what it revoked. A serial that is
	// already revoked is left as it was and not returned. An unknown serial is
	// ErrNotFound; an identity or prefix matching nothing returns no error and
	// an empty slice.
	Revoke(ctx context.Context, req RevokeRequest) ([]Revocation, error)

	// Events returns up to limit events with Position > after, in order.
	Events(ctx context.Context, after int64, limit int) ([]Event, error)
	// LastPosition returns the position of the last event, 0 if none.
	LastPosition(ctx context.Context) (int64, error)
	// RevocationSnapshot returns the revocations of certificates unexpired at
	// now, and the last event position, read consistently.
	RevocationSnapshot(ctx context.Context, now time.Time) (Snapshot, error)

	// AppendAudit appends one audit record on its own.
	AppendAudit(ctx context.Context, e audit.Entry) (audit.Record, error)
	// AuditRecords returns up to limit records with Seq > after, in order.
	AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Record, error)
	// Unrecorded returns the certificates and revocations that have no
	// audit record (rows added behind certgate's back).
	Unrecorded(ctx context.Context) ([]Unrecorded, error)
	// LastAudit returns the newest audit record of an action, if any.
	LastAudit(ctx context.Context, action string) (audit.Record, bool, error)

	// ListCAs returns every CA certificate, ordered by kind, generation and
	// creation.
	ListCAs(ctx context.Context) ([]CACert, error)
	// ApplyCAChange applies ch in one transaction (see [CAChange]) and
	// returns the ID of the rotation it inserted or updated, 0 if none.
	ApplyCAChange(ctx context.Context, ch CAChange) (int64, error)
	// Rotations returns every rotation, oldest first.
	Rotations(ctx context.Context) ([]Rotation, error)
	// IssuerUsage counts, per issuer key ID, the certificates unexpired at
	// now and unrevoked, and the latest NotAfter of any it issued, leaving
	// out the certificates of identity except (if not empty).
	IssuerUsage(ctx context.Context, now time.Time, except string) (map[string]IssuerUsage, error)

	// RecordUsage records a gateway's usage report once (see
	// [SQL.RecordUsage]); a report whose ID was recorded before changes
	// nothing and returns duplicate true.
	RecordUsage(ctx context.Context, r UsageReport) (duplicate bool, err error)
	// IdentitiesSeen returns the last use of every identity, by identity.
	IdentitiesSeen(ctx context.Context) ([]Seen, error)
	// CertificatesSeen returns the last use of every certificate, by serial.
	CertificatesSeen(ctx context.Context) (map[string]Seen, error)
	// UsageDays returns daily counts of an identity ("" for all) from a
	// day on ("" for all), by identity, day and route.
	UsageDays(ctx context.Context, identity, from string) ([]UsageRow, error)
	// GrantRole records a role grant with its audit record (role.grant);
	// the same grant twice is ErrDuplicateGrant.
	GrantRole(ctx context.Context, g roles.Grant) error
	// RevokeRole removes a grant (matched by role, holder and scope) with
	// its audit record (role.revoke): ErrNotFound if there is none,
	// ErrLastAdmin if it is the last admin grant.
	RevokeRole(ctx context.Context, g roles.Grant, by string, now time.Time) error
	// RoleGrants returns every grant, ordered by role, holder and scope.
	RoleGrants(ctx context.Context) ([]roles.Grant, error)

	// Legacy static API keys (legacykeys.go): the installation's salt,
	// import (all or none), revoke, extend, the migration mark and the
	// automatic revocation after it, each audited with an EventLegacyKey.
	LegacyKeySalt(ctx context.Context, now time.Time) ([]byte, error)
	ImportLegacyKeys(ctx context.Context, keys []LegacyKey) error
	RevokeLegacyKey(ctx context.Context, name, reason, by string, now time.Time) error
	ExtendLegacyKey(ctx context.Context, name string, sunset time.Time, by string, now time.Time) error
	MarkLegacyKeyMigration(ctx context.Context, name, tokenID string, grace time.Duration, by string, now time.Time) error
	RevokeMigratedLegacyKeys(ctx context.Context, now time.Time) ([]string, error)
	LegacyKeys(ctx context.Context) ([]LegacyKey, error)

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

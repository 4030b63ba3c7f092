package wire

import "time"

// Paths of legacy static API keys (admin; the list also auditor).
const (
	// PathLegacyKeys: GET [?stale=DUR] → LegacyKeyList (admin, auditor);
	// POST LegacyKeyImport → LegacyKeyList, the keys imported (admin).
	PathLegacyKeys = "/v1/legacy-keys"
	// PathLegacyKeySalt: GET → LegacyKeySalt (admin): the CLI hashes the
	// keys of an import file itself, so no key leaves the admin's machine.
	PathLegacyKeySalt = "/v1/legacy-keys/salt"
	// PathLegacyKeys/NAME/revoke (LegacyKeyRevoke), /extend
	// (LegacyKeyExtend), /migrate (LegacyKeyMigrate →
	// LegacyKeyMigrateResponse), each POST (admin).
)

// LegacyKeySalt is the installation's salt: keys are known by
// SHA-256(salt || key).
type LegacyKeySalt struct {
	Salt []byte `json:"salt"`
}

// LegacyKeyImport is the body of POST /v1/legacy-keys: hashes only.
type LegacyKeyImport struct {
	Keys   []LegacyKeyHash `json:"keys"`
	Sunset time.Time       `json:"sunset"`
}

// LegacyKeyHash names one key by its hash (hex of SHA-256(salt || key)).
type LegacyKeyHash struct {
	Name string `json:"name"`
	Hash string `json:"hash"`
	// Line is the line of the import file, for the error message.
	Line int `json:"line,omitempty"`
}

// MaxLegacyKeysImport bounds one import.
const MaxLegacyKeysImport = 10000

// LegacyKeyRevoke is the body of POST PathLegacyKeys/NAME/revoke.
type LegacyKeyRevoke struct {
	Reason string `json:"reason,omitempty"`
}

// LegacyKeyExtend is the body of POST PathLegacyKeys/NAME/extend.
type LegacyKeyExtend struct {
	Sunset time.Time `json:"sunset"`
}

// LegacyKeyMigrate is the body of POST PathLegacyKeys/NAME/migrate.
type LegacyKeyMigrate struct {
	TTL string `json:"ttl,omitempty"` // of the enrollment token, Go duration
	// AutoRevokeAfter, a Go duration, revokes the key that long after a
	// certificate of its identity was first used; "" never.
	AutoRevokeAfter string `json:"auto_revoke_after,omitempty"`
}

// LegacyKeyMigrateResponse is the token for the key's identity.
type LegacyKeyMigrateResponse struct {
	Key   LegacyKey           `json:"key"`
	Token CreateTokenResponse `json:"token"`
}

// Migration states of a key's client (LegacyKey.State).
const (
	LegacyStateUnused   = "unused"           // neither the key nor a certificate seen
	LegacyStateKeyOnly  = "key only"         // the key in use, no certificate of its identity
	LegacyStateBoth     = "both"             // a certificate in use, and the key still since
	LegacyStateCertOnly = "certificate only" // the key revoked, or unused since a certificate was
)

// LegacyKey is a key as listed: never the key, nor its hash.
type LegacyKey struct {
	Name         string    `json:"name"`
	Identity     string    `json:"identity"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	Sunset       time.Time `json:"sunset"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokedBy    string    `json:"revoked_by,omitempty"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
	MigratedAt   time.Time `json:"migrated_at,omitzero"`
	// AutoRevokeAfter is the grace after the first certificate use, "" if none.
	AutoRevokeAfter string    `json:"auto_revoke_after,omitempty"`
	CertFirstSeen   time.Time `json:"cert_first_seen,omitzero"`
	Requests        int64     `json:"requests"`
	LastSeen        time.Time `json:"last_seen,omitzero"`
	Routes          []string  `json:"routes,omitempty"`
	Sources         []string  `json:"sources,omitempty"`
	CertRequests    int64     `json:"cert_requests"`
	CertLastSeen    time.Time `json:"cert_last_seen,omitzero"`
	State           string    `json:"state"`
}

// LegacyKeyList answers GET /v1/legacy-keys.
type LegacyKeyList struct {
	Keys []LegacyKey `json:"keys"`
}

// LegacyKeySet is what the change feed gives gateways: the salt and the
// hash of every key not revoked, with the identity it maps to.
type LegacyKeySet struct {
	Salt []byte         `json:"salt"`
	Keys []LegacyKeyRef `json:"keys"`
}

// LegacyKeyRef is one accepted key in a LegacyKeySet.
type LegacyKeyRef struct {
	Hash     string    `json:"hash"` // hex
	Name     string    `json:"name"`
	Identity string    `json:"identity"`
	Sunset   time.Time `json:"sunset"`
	Since    time.Time `json:"since"` // imported at: the Deprecation date
}

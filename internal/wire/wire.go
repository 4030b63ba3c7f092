package wire

import "time"

// Paths of the API. Paths under /v1/ take and return JSON; the bundle, the
// CRL and OCSP are the standard formats of their kinds.
const (
	PathTokens       = "/v1/tokens"       // POST CreateTokenRequest → CreateTokenResponse (admin)
	PathEnroll       = "/v1/enroll"       // POST EnrollRequest → EnrollResponse (the token authenticates)
	PathRenew        = "/v1/renew"        // POST RenewRequest → EnrollResponse (the current certificate authenticates)
	PathCertificates = "/v1/certificates" // GET → CertificateList; GET PathCertificates/SERIAL → Certificate (admin)
	PathRevoke       = "/v1/revoke"       // POST RevokeRequest → RevokeResponse (admin)
	PathAudit        = "/v1/audit"        // GET ?after=N&limit=N → AuditRecords (admin, auditor, gateway: a witness checks a checkpoint extends the last)
	// PathAuditCheckpoint: GET → the newest signed checkpoint of the audit
	// log, a C2SP signed note, text/plain (public).
	PathAuditCheckpoint = "/v1/audit/checkpoint"
	// PathAuditKey: GET → the audit key's public half, PEM (public).
	PathAuditKey = "/v1/audit/key"
	// PathAuditUnrecorded: GET → Unrecorded, certificates and revocations
	// without their audit record (admin, auditor).
	PathAuditUnrecorded = "/v1/audit/unrecorded"
	PathRevocations     = "/v1/revocations"  // GET → Revocations (gateway or admin)
	PathFeed            = "/v1/feed"         // GET [?after=N] → the change feed, JSON lines (gateway or admin; internal/feed)
	PathBundle          = "/v1/bundle"       // GET → the trusted roots, PEM
	PathCA              = "/v1/ca"           // GET → CA: roots, published intermediates, revoked CA keys (public)
	PathCACert          = "/ca"              // GET PathCACert/KEYID.crt → a CA certificate, DER (public; authority information access)
	PathCRL             = "/crl"             // GET → the active intermediate's CRL; GET PathCRL/KEYID → that CA key's CRL, DER
	PathOCSP            = "/ocsp"            // POST, or GET PathOCSP/BASE64 → an OCSP response
	PathHealth          = "/healthz"         // GET → Health
	PathUsage           = "/v1/usage"        // POST UsageReport → UsageAck (gateway)
	PathIdentities      = "/v1/identities"   // GET [?stale=DUR&expiring=DUR&identity=ID] → IdentityList (admin)
	PathRoles           = "/v1/roles"        // GET → RoleList (admin, auditor); POST RoleChange → RoleGrant (admin)
	PathRolesRevoke     = "/v1/roles/revoke" // POST RoleChange → RoleGrant, the grant removed (admin)
)

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Identity string `json:"identity"`
	TTL      string `json:"ttl,omitempty"` // Go duration; default from config
	// Role must name, comma-separated, the roles the identity holds
	// ("gateway", "admin,auditor"), if it holds any: a token for such an
	// identity is privileged and must be asked for knowingly.
	Role string `json:"role,omitempty"`
}

// RoleChange is the body of POST /v1/roles and /v1/roles/revoke.
type RoleChange struct {
	Role   string `json:"role"`            // admin, auditor, gateway or issuer
	Holder string `json:"holder"`          // an identity or a pattern ending in /*
	Scope  string `json:"scope,omitempty"` // issuer only: the identities it acts on
}

// RoleGrant is one grant.
type RoleGrant struct {
	Role      string    `json:"role"`
	Holder    string    `json:"holder"`
	Scope     string    `json:"scope,omitempty"`
	GrantedBy string    `json:"granted_by"`
	GrantedAt time.Time `json:"granted_at"`
}

// RoleList answers GET /v1/roles.
type RoleList struct {
	Grants []RoleGrant `json:"grants"`
}

// CreateTokenResponse answers POST /v1/tokens. Token is a secret.
type CreateTokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	Identity  string    `json:"identity"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM
}

// RenewRequest is the body of POST /v1/renew.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM, for a new key and the same identity
}

// EnrollResponse answers an enrollment or a renewal: the new certificate,
// its chain and the bundle.
type EnrollResponse struct {
	Serial      string    `json:"serial"`
	Identity    string    `json:"identity"`
	NotAfter    time.Time `json:"not_after"`
	Certificate string    `json:"certificate"` // PEM leaf
	Chain       string    `json:"chain"`       // PEM intermediates
	Bundle      string    `json:"bundle"`      // PEM roots
}

// Certificate statuses.
const (
	StatusValid   = "valid"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
)

// Certificate is a certificate record.
type Certificate struct {
	Serial      string      `json:"serial"`
	Identity    string      `json:"identity"`
	CommonName  string      `json:"common_name"`
	Fingerprint string      `json:"fingerprint_sha256"`
	NotBefore   time.Time   `json:"not_before"`
	NotAfter    time.Time   `json:"not_after"`
	KeyType     string      `json:"key_type"`
	Obtained    string      `json:"obtained"`
	RenewedFrom string      `json:"renewed_from,omitempty"`
	IssuedAt    time.Time   `json:"issued_at"`
	Status      string      `json:"status"` // StatusValid, StatusExpired or StatusRevoked
	Revocation  *Revocation `json:"revocation,omitempty"`
	// LastSeen is the last request a gateway reported with this
	// certificate, and from which host (list only; zero: never seen).
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LastSource string    `json:"last_source,omitempty"`
	PEM        string    `json:"pem,omitempty"` // GET /v1/certificates/SERIAL only
}

// CertificateList answers GET /v1/certificates.
type CertificateList struct {
	Certificates []Certificate `json:"certificates"`
}

// Revocation describes a revocation.
type Revocation struct {
	Serial     string    `json:"serial"`
	Reason     int       `json:"reason"`
	ReasonName string    `json:"reason_name"`
	RevokedAt  time.Time `json:"revoked_at"`
	RevokedBy  string    `json:"revoked_by"`
}

// RevokeRequest is the body of POST /v1/revoke: exactly one selector.
type RevokeRequest struct {
	Serial         string `json:"serial,omitempty"`
	Identity       string `json:"identity,omitempty"`
	IdentityPrefix string `json:"identity_prefix,omitempty"`
	Reason         string `json:"reason,omitempty"` // RFC 5280 name or code
	// DryRun lists what would be revoked and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// RevokeResponse answers POST /v1/revoke: what was revoked, or with
// DryRun, what would have been.
type RevokeResponse struct {
	DryRun  bool         `json:"dry_run,omitempty"`
	Revoked []Revocation `json:"revoked"`
}

// AuditRecord is one record of the audit log.
type AuditRecord struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Subject  string    `json:"subject"`
	Detail   string    `json:"detail,omitempty"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// AuditRecords answers GET /v1/audit.
type AuditRecords struct {
	Records []AuditRecord `json:"records"`
}

// UnrecordedChange is a certificate or revocation the store holds without
// its audit record.
type UnrecordedChange struct {
	Kind      string    `json:"kind"` // certificate or revocation
	Serial    string    `json:"serial"`
	Identity  string    `json:"identity,omitempty"`
	Time      time.Time `json:"time"`
	BeforeSeq int64     `json:"before_seq,omitempty"` // the first record after Time; 0: after the last
}

// Unrecorded answers GET /v1/audit/unrecorded.
type Unrecorded struct {
	Changes []UnrecordedChange `json:"changes"`
}

// Revoked is one revoked, unexpired certificate, as GET /v1/revocations
// and the change feed's snapshot list it. NotAfter lets a follower forget
// the entry once the certificate has expired anyway.
type Revoked struct {
	Serial   string    `json:"serial"`
	Identity string    `json:"identity"`
	Reason   int       `json:"reason"`
	NotAfter time.Time `json:"not_after"`
}

// Revocations answers GET /v1/revocations: every revoked certificate that
// has not expired yet, as of a position of the change feed.
type Revocations struct {
	Position int64     `json:"position"`
	Revoked  []Revoked `json:"revoked"`
	// RevokedIssuers are the key IDs of revoked CA certificates (CA): a
	// certificate whose chain goes through one is refused.
	RevokedIssuers []string `json:"revoked_issuers,omitempty"`
}

// CA is the CA's public state, as GET /v1/ca and the change feed's "ca"
// message carry it: what clients trust, which intermediates a verifier may
// need to complete a chain (a client that sends only its leaf, a new
// intermediate before it signs), and which CA keys are revoked (a chain
// through one is refused at once, and its holders renew under the active
// intermediate).
type CA struct {
	TrustDomain string `json:"trust_domain"`
	// Roots is the trust bundle, PEM: every root that is next, active or
	// retiring (both during a root rotation).
	Roots string `json:"roots"`
	// Intermediates are the published CA certificates below the roots, PEM:
	// intermediates that are next, active or retiring, and the
	// cross-certificates of a root rotation.
	Intermediates string `json:"intermediates"`
	// Active is the key ID (lowercase hex subject key identifier) of the
	// intermediate that signs new certificates.
	Active string `json:"active"`
	// RevokedIssuers are the key IDs of revoked CA certificates.
	RevokedIssuers []string `json:"revoked_issuers"`
	// Position is the change feed position this state is current at.
	Position int64 `json:"position"`
}

// Health answers GET /healthz.
type Health struct {
	Status string `json:"status"` // "ok"
}

// UsageReport is the body of POST /v1/usage: what one gateway saw since
// its last report, aggregated per identity, certificate, route and UTC day.
// A gateway retries a report until the server acknowledges it; the server
// records each ID once, so a retried report is never counted twice.
type UsageReport struct {
	ID      string       `json:"id"` // random, unique per report (MaxUsageIDLen)
	Entries []UsageEntry `json:"entries"`
	// Dropped counts requests the gateway could not aggregate because its
	// table was full (bounded memory); they are in its access log only.
	Dropped int64 `json:"dropped,omitempty"`
	// Sharing lists certificates seen from more source hosts at once than
	// the gateway's threshold.
	Sharing []SharingReport `json:"sharing,omitempty"`
}

// Bounds the server enforces on a UsageReport.
const (
	MaxUsageEntries = 20000
	MaxUsageIDLen   = 64
	MaxSharing      = 1000
)

// UsageEntry counts the requests (and TCP connections) of one identity,
// with one certificate, on one route, on one UTC day.
type UsageEntry struct {
	Identity string `json:"identity"`
	Serial   string `json:"serial"`
	Route    string `json:"route"` // "" for requests refused before a route matched
	Day      string `json:"day"`   // YYYY-MM-DD, UTC
	// Requests by status class: index 0 is "no status" (a TCP connection,
	// a request cut before an answer), 1 to 5 are 1xx to 5xx.
	Requests [6]int64  `json:"requests"`
	BytesIn  int64     `json:"bytes_in"`
	BytesOut int64     `json:"bytes_out"`
	LastSeen time.Time `json:"last_seen"`
	Source   string    `json:"source"` // the host (no port) of the last request
}

// SharingReport says one certificate was used from Sources (distinct
// hosts) within Window, more than the gateway's threshold allows.
type SharingReport struct {
	Identity string    `json:"identity"`
	Serial   string    `json:"serial"`
	Sources  []string  `json:"sources"`
	Window   string    `json:"window"` // a Go duration
	Time     time.Time `json:"time"`
}

// UsageAck answers a UsageReport.
type UsageAck struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"` // the report was recorded before
}

// Identity is one identity of the inventory: its certificates, when a
// gateway last saw it, and what is worth an operator's attention.
type Identity struct {
	Identity     string    `json:"identity"`
	Valid        int       `json:"valid"`   // certificates valid now
	Revoked      int       `json:"revoked"` // certificates revoked
	Total        int       `json:"total"`
	LatestSerial string    `json:"latest_serial,omitempty"`
	NotAfter     time.Time `json:"not_after"` // of the latest certificate
	LastSeen     time.Time `json:"last_seen,omitzero"`
	LastSource   string    `json:"last_source,omitempty"`
	Requests     int64     `json:"requests"` // every request recorded for it
	// Stale: a valid certificate and no request for the stale window.
	Stale bool `json:"stale,omitempty"`
	// Expiring: its last valid certificate lapses within the expiring
	// window and none was issued after it since renewal was due.
	Expiring bool `json:"expiring,omitempty"`
	// Sharing: a gateway reported its certificate used from several
	// hosts at once (the time of the last report).
	SharingSuspected time.Time `json:"sharing_suspected,omitzero"`
}

// IdentityList answers GET /v1/identities.
type IdentityList struct {
	Now        time.Time  `json:"now"`
	Identities []Identity `json:"identities"`
}

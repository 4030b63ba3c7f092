package audit

// Actions on legacy static API keys (internal/legacykey); the subject is
// the key's identity, spiffe://TD/legacy/NAME. The key itself is never in
// a record, nor its hash.
const (
	ActionLegacyKeyImport  = "legacy_key.import"
	ActionLegacyKeyRevoke  = "legacy_key.revoke"
	ActionLegacyKeyExtend  = "legacy_key.extend"
	ActionLegacyKeyMigrate = "legacy_key.migrate"
)

package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/wire"
)

// TestLegacyKeyRoles: legacy keys are admin business; an auditor reads
// the list and changes nothing, a plain client not even that, an issuer
// migrates only a key whose identity is in its scope; every refusal
// leaves the state as it was.
func TestLegacyKeyRoles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(&e.admin)
	salt, err := admin.LegacyKeySalt(ctx)
	if err != nil || len(salt) != 32 {
		t.Fatalf("salt %x %v", salt, err)
	}
	hash := strings.Repeat("ab", 32)
	sunset := e.clock.Now().Add(24 * time.Hour)
	if _, err := admin.ImportLegacyKeys(ctx, wire.LegacyKeyImport{Sunset: sunset, Keys: []wire.LegacyKeyHash{{Name: "billing", Hash: hash}}}); err != nil {
		t.Fatal(err)
	}
	auditor := e.clientCert("/ops/audrey", ca.ClientProfile)
	e.grant(roles.Auditor, "spiffe://example.org/ops/audrey", "")
	lead := e.clientCert("/team/pay/lead", ca.ClientProfile)
	e.grant(roles.Issuer, "spiffe://example.org/team/pay/lead", "spiffe://example.org/team/pay/*")
	plain := e.clientCert("/svc/plain", ca.ClientProfile)
	if keys, err := e.client(&auditor).LegacyKeys(ctx, ""); err != nil || len(keys) != 1 || keys[0].State != wire.LegacyStateUnused {
		t.Fatalf("auditor list: %+v %v", keys, err)
	}
	before := e.state()
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"auditor imports", func() error {
			_, err := e.client(&auditor).ImportLegacyKeys(ctx, wire.LegacyKeyImport{Sunset: sunset, Keys: []wire.LegacyKeyHash{{Name: "x", Hash: strings.Repeat("cd", 32)}}})
			return err
		}, "server said 403 forbidden: identity spiffe://example.org/ops/audrey may not import legacy keys: it holds only auditor; that needs the role admin"},
		{"auditor revokes", func() error {
			_, err := e.client(&auditor).RevokeLegacyKey(ctx, "billing", wire.LegacyKeyRevoke{})
			return err
		}, "server said 403 forbidden: identity spiffe://example.org/ops/audrey may not revoke legacy keys: it holds only auditor; that needs the role admin"},
		{"plain lists", func() error { _, err := e.client(&plain).LegacyKeys(ctx, ""); return err },
			"server said 403 forbidden: identity spiffe://example.org/svc/plain may not list legacy keys: it holds no role; that needs the role admin or auditor"},
		{"issuer outside its scope", func() error {
			_, err := e.client(&lead).MigrateLegacyKey(ctx, "billing", wire.LegacyKeyMigrate{})
			return err
		}, "server said 403 forbidden: identity spiffe://example.org/team/pay/lead may mint tokens only inside its issuer scope spiffe://example.org/team/pay/*; spiffe://example.org/legacy/billing is outside it"},
		{"bad hash", func() error {
			_, err := admin.ImportLegacyKeys(ctx, wire.LegacyKeyImport{Sunset: sunset, Keys: []wire.LegacyKeyHash{{Name: "y", Hash: "00", Line: 7}}})
			return err
		}, `server said 400 bad_request: legacy keys: nothing imported: line 7: hash of "y" is not 64 hex digits`},
		{"past sunset", func() error {
			_, err := admin.ImportLegacyKeys(ctx, wire.LegacyKeyImport{Sunset: e.clock.Now().Add(-time.Hour), Keys: []wire.LegacyKeyHash{{Name: "y", Hash: strings.Repeat("cd", 32)}}})
			return err
		}, "server said 400 bad_request: legacy keys: nothing imported: sunset " + e.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + " is not in the future"},
		{"bad auto revoke", func() error {
			_, err := admin.MigrateLegacyKey(ctx, "billing", wire.LegacyKeyMigrate{AutoRevokeAfter: "soon"})
			return err
		}, `server said 400 bad_request: auto_revoke_after "soon" is not a positive duration such as 24h`},
	} {
		if err := tc.do(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
	}
	e.unchanged(before)
}

package apiclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/certgate/certgate/internal/wire"
)

// LegacyKeySalt reads the installation's salt (admin).
func (c *Client) LegacyKeySalt(ctx context.Context) ([]byte, error) {
	var out wire.LegacyKeySalt
	err := c.do(ctx, http.MethodGet, wire.PathLegacyKeySalt, nil, &out)
	return out.Salt, err
}

// ImportLegacyKeys imports hashes of keys, all or none (admin).
func (c *Client) ImportLegacyKeys(ctx context.Context, in wire.LegacyKeyImport) ([]wire.LegacyKey, error) {
	var out wire.LegacyKeyList
	err := c.do(ctx, http.MethodPost, wire.PathLegacyKeys, in, &out)
	return out.Keys, err
}

// LegacyKeys lists the keys; stale, if not empty, keeps the keys unused for
// that window (admin, auditor).
func (c *Client) LegacyKeys(ctx context.Context, stale string) ([]wire.LegacyKey, error) {
	var out wire.LegacyKeyList
	p := wire.PathLegacyKeys
	if stale != "" {
		p += "?stale=" + url.QueryEscape(stale)
	}
	err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out.Keys, err
}

func legacyPath(name, op string) string {
	return wire.PathLegacyKeys + "/" + url.PathEscape(name) + "/" + op
}

// RevokeLegacyKey revokes a key (admin).
func (c *Client) RevokeLegacyKey(ctx context.Context, name string, in wire.LegacyKeyRevoke) (wire.LegacyKey, error) {
	var out wire.LegacyKey
	err := c.do(ctx, http.MethodPost, legacyPath(name, "revoke"), in, &out)
	return out, err
}

// ExtendLegacyKey moves a key's sunset (admin).
func (c *Client) ExtendLegacyKey(ctx context.Context, name string, in wire.LegacyKeyExtend) (wire.LegacyKey, error) {
	var out wire.LegacyKey
	err := c.do(ctx, http.MethodPost, legacyPath(name, "extend"), in, &out)
	return out, err
}

// MigrateLegacyKey mints an enrollment token for a key's identity (admin,
// or an issuer whose scope covers it).
func (c *Client) MigrateLegacyKey(ctx context.Context, name string, in wire.LegacyKeyMigrate) (wire.LegacyKeyMigrateResponse, error) {
	var out wire.LegacyKeyMigrateResponse
	err := c.do(ctx, http.MethodPost, legacyPath(name, "migrate"), in, &out)
	return out, err
}

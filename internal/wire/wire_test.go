package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/wire"
)

// TestJSONShape pins every body's field names and omissions: these are
// what clients in other languages parse, so a rename here breaks them.
func TestJSONShape(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rev := wire.Revocation{Serial: "1a", Reason: 1, ReasonName: "keyCompromise", RevokedAt: at, RevokedBy: "spiffe://example.org/admin/a"}
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"create token request", wire.CreateTokenRequest{Identity: "spiffe://example.org/svc/a"},
			`{"identity":"spiffe://example.org/svc/a"}`},
		{"create token response", wire.CreateTokenResponse{Token: "cgt1.x", ID: "t1", Identity: "spiffe://example.org/svc/a", ExpiresAt: at},
			`{"token":"cgt1.x","id":"t1","identity":"spiffe://example.org/svc/a","expires_at":"2026-03-01T12:00:00Z"}`},
		{"enroll request", wire.EnrollRequest{Token: "cgt1.x", CSR: "PEM"}, `{"token":"cgt1.x","csr":"PEM"}`},
		{"renew request", wire.RenewRequest{CSR: "PEM"}, `{"csr":"PEM"}`},
		{"enroll response", wire.EnrollResponse{Serial: "1a", Identity: "spiffe://example.org/svc/a", NotAfter: at, Certificate: "L", Chain: "C", Bundle: "B"},
			`{"serial":"1a","identity":"spiffe://example.org/svc/a","not_after":"2026-03-01T12:00:00Z","certificate":"L","chain":"C","bundle":"B"}`},
		{"certificate list", wire.CertificateList{Certificates: []wire.Certificate{{Serial: "1a", Status: wire.StatusRevoked, Revocation: &rev}}},
			`{"certificates":[{"serial":"1a","identity":"","common_name":"","fingerprint_sha256":"","not_before":"0001-01-01T00:00:00Z","not_after":"0001-01-01T00:00:00Z","key_type":"","obtained":"","issued_at":"0001-01-01T00:00:00Z","status":"revoked","revocation":{"serial":"1a","reason":1,"reason_name":"keyCompromise","revoked_at":"2026-03-01T12:00:00Z","revoked_by":"spiffe://example.org/admin/a"}}]}`},
		{"revoke request", wire.RevokeRequest{IdentityPrefix: "spiffe://example.org/host", DryRun: true},
			`{"identity_prefix":"spiffe://example.org/host","dry_run":true}`},
		{"revoke response", wire.RevokeResponse{Revoked: []wire.Revocation{}}, `{"revoked":[]}`},
		{"revoke response, dry run", wire.RevokeResponse{Revoked: []wire.Revocation{}, DryRun: true}, `{"dry_run":true,"revoked":[]}`},
		{"audit records", wire.AuditRecords{Records: []wire.AuditRecord{{Seq: 1, Time: at, Actor: "a", Action: "b", Subject: "c", PrevHash: "00", Hash: "11"}}},
			`{"records":[{"seq":1,"time":"2026-03-01T12:00:00Z","actor":"a","action":"b","subject":"c","prev_hash":"00","hash":"11"}]}`},
		{"revocations", wire.Revocations{Position: 7, Revoked: []wire.Revoked{{Serial: "1a", Identity: "spiffe://example.org/svc/a", Reason: 1, NotAfter: at}}},
			`{"position":7,"revoked":[{"serial":"1a","identity":"spiffe://example.org/svc/a","reason":1,"not_after":"2026-03-01T12:00:00Z"}]}`},
		{"health", wire.Health{Status: "ok"}, `{"status":"ok"}`},
		{"error", wire.ErrorBody{Error: wire.ErrorDetail{Code: wire.CodeTokenUsed, Message: "token was already used"}},
			`{"error":{"code":"token_used","message":"token was already used"}}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestDecodeError(t *testing.T) {
	for _, c := range []struct {
		body string
		want wire.ErrorDetail
		ok   bool
	}{
		{`{"error":{"code":"revoked","message":"client certificate 1a is revoked"}}`, wire.ErrorDetail{Code: wire.CodeRevoked, Message: "client certificate 1a is revoked"}, true},
		{`{"error":{"code":"internal"}}`, wire.ErrorDetail{Code: wire.CodeInternal}, true},
		{`{"error":{"message":"no code"}}`, wire.ErrorDetail{}, false},
		{`{"error":"a string"}`, wire.ErrorDetail{}, false},
		{`<html>502 Bad Gateway</html>`, wire.ErrorDetail{}, false},
		{``, wire.ErrorDetail{}, false},
		{`{"error":{"code":"revoked"`, wire.ErrorDetail{}, false},
	} {
		got, ok := wire.DecodeError([]byte(c.body))
		if got != c.want || ok != c.ok {
			t.Errorf("DecodeError(%q) = %+v, %v; want %+v, %v", c.body, got, ok, c.want, c.ok)
		}
	}
}

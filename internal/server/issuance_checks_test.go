package server_test

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/token"
)

// TestEnrollForgedTokenIdentity: the server checks the CSR against the
// identity the token string names and lets the store compare it with the
// token's recorded identity. A token edited to name another identity (the
// secret is the real one) gets no certificate, and stays unredeemed.
func TestEnrollForgedTokenIdentity(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tokStr := e.newToken(svcID, 0)
	tk, err := token.Parse(tokStr)
	if err != nil {
		t.Fatal(err)
	}
	const admin = "spiffe://example.org/admin/root"
	tk.Identity = identity.MustParse(admin)
	before := e.certCount()
	_, err = e.client(nil).Enroll(ctx, tk.String(), newCSR(t, keytype.ECDSAP256, admin))
	wantAPIError(t, err, 403, "token_invalid", "token is not valid")
	if n := e.certCount(); n != before {
		t.Fatalf("%d certificates stored for a forged token", n-before)
	}
	if st, err := e.store.GetToken(ctx, tk.ID); err != nil || !st.RedeemedAt.IsZero() {
		t.Fatalf("token redeemed by a forged request: %+v %v", st, err)
	}
	// The real token still works.
	if _, err := e.client(nil).Enroll(ctx, tokStr, newCSR(t, keytype.ECDSAP256, svcID)); err != nil {
		t.Fatal(err)
	}
}

// TestRenewUnrecorded: a certificate our intermediate signed but the store
// never recorded (it cannot have been handed out) does not renew.
func TestRenewUnrecorded(t *testing.T) {
	e := newEnv(t)
	key, _ := keytype.Generate(keytype.ECDSAP256)
	p, err := e.authz.Issuer().Prepare(ca.Request{PublicKey: key.Public(), Identity: identity.MustParse(svcID)}, ca.ClientProfile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := e.authz.Issuer().Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	cur := tls.Certificate{Certificate: [][]byte{leaf.Raw, e.authz.Issuer().Certificate().Raw}, PrivateKey: key, Leaf: leaf}
	before := e.certCount()
	_, err = e.client(&cur).Renew(context.Background(), newCSR(t, keytype.ECDSAP256, svcID))
	wantAPIError(t, err, 403, "unknown_certificate", "certificate was not issued by this CA")
	if e.certCount() != before {
		t.Fatal("an unrecorded certificate renewed")
	}
}

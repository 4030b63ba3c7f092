package server_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

func csrFor(t *testing.T, key crypto.Signer, id string) string {
	t.Helper()
	p, err := csr.Create(key, identity.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cur := e.clientCert("/svc/billing", ca.ClientProfile)
	oldSerial := ca.SerialHex(cur.Leaf.SerialNumber)
	before := e.certCount()

	resp, err := e.client(&cur).Renew(ctx, newCSR(t, keytype.ECDSAP256, svcID))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pemutil.ParseCertificates([]byte(resp.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Identity != svcID || leaf[0].URIs[0].String() != svcID {
		t.Fatalf("renewed identity %s", resp.Identity)
	}
	rec, err := e.store.GetCertificate(ctx, resp.Serial)
	if err != nil || rec.Obtained != store.ObtainedRenew || rec.RenewedFrom != oldSerial {
		t.Fatalf("record %+v %v", rec, err)
	}
	if e.certCount() != before+1 {
		t.Fatal("renewal did not store exactly one certificate")
	}
	recs, _ := e.store.AuditRecords(ctx, 0, 10000)
	if last := recs[len(recs)-1]; last.Action != "cert.renew" || last.Subject != resp.Serial || last.Actor != svcID {
		t.Fatalf("audit %+v", last)
	}
}

func TestRenewRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cur := e.clientCert("/svc/billing", ca.ClientProfile)
	revoked := e.clientCert("/svc/billing", ca.ClientProfile)
	if _, err := e.authz.Revoke(ctx, store.RevokeRequest{Serial: ca.SerialHex(revoked.Leaf.SerialNumber), Reason: 1, By: "test"}); err != nil {
		t.Fatal(err)
	}
	foreign := testca.New(t, "example.org").Issue(t, testca.WithID(svcID)).TLSCertificate()

	for _, tc := range []struct {
		name            string
		cert            *tls.Certificate
		csr             string
		status          int
		code, msg, tlsE string
	}{
		{name: "no certificate", csr: newCSR(t, keytype.ECDSAP256, svcID), status: 401, code: "unauthenticated", msg: "renewal needs the current client certificate"},
		{name: "same key", cert: &cur, csr: csrFor(t, cur.PrivateKey.(crypto.Signer), svcID), status: 400, code: "same_key", msg: "renewal must use a new key"},
		{name: "another identity", cert: &cur, csr: newCSR(t, keytype.ECDSAP256, "spiffe://example.org/admin/alice"), status: 400, code: "bad_csr",
			msg: "csr: asks for identity spiffe://example.org/admin/alice but may only have spiffe://example.org/svc/billing"},
		{name: "revoked", cert: &revoked, csr: newCSR(t, keytype.ECDSAP256, svcID), status: 403, code: "revoked", msg: "certificate is revoked; enroll again with a new token"},
		{name: "malformed CSR", cert: &cur, csr: "garbage", status: 400, code: "bad_csr", msg: "csr: malformed request: pemutil: no PEM data found"},
		// A certificate of another CA never gets past the handshake.
		{name: "another CA", cert: &foreign, csr: newCSR(t, keytype.ECDSAP256, svcID), tlsE: "tls: unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.certCount()
			_, err := e.client(tc.cert).Renew(ctx, tc.csr)
			if tc.tlsE != "" {
				// TLS 1.3 reports the server's alert on the first read, so
				// the client may see the alert or just a closed connection.
				if err == nil || strings.Contains(err.Error(), "server said") {
					t.Fatalf("got %v, want the handshake refused", err)
				}
			} else {
				wantAPIError(t, err, tc.status, tc.code, tc.msg)
			}
			if e.certCount() != before {
				t.Fatal("a refused renewal stored a certificate")
			}
		})
	}
}

// TestRenewExpired: an expired certificate is refused by the handshake, and
// by the authority itself should one reach it (a clock skew between them).
func TestRenewExpired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cur := e.clientCert("/svc/billing", ca.ClientProfile)
	e.clock.Advance(ca.DefaultClientLifetime + 1)
	_, err := e.authz.Renew(ctx, cur.Leaf, []byte(newCSR(t, keytype.ECDSAP256, svcID)))
	if err != ca.ErrRenewExpired || err.Error() != "ca: certificate has expired; enroll again with a new token" {
		t.Fatalf("authority: %v", err)
	}
	_, err = e.client(&cur).Renew(ctx, newCSR(t, keytype.ECDSAP256, svcID))
	if err == nil || strings.Contains(err.Error(), "server said") {
		t.Fatalf("handshake: %v", err)
	}
}

// TestGatewayEnroll: a /gateway/ identity gets a certificate that also
// serves TLS, with the host names its CSR asks for, and keeps them on renewal.
func TestGatewayEnroll(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gwID := "spiffe://example.org/gateway/edge"
	key, _ := keytype.Generate(keytype.ECDSAP256)
	csrPEM, err := csr.CreateWithHosts(key, identity.MustParse(gwID), []string{"gw.example.org"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.client(&e.admin).CreateRoleToken(ctx, gwID, "gateway", 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client(nil).Enroll(ctx, tok.Token, string(csrPEM))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pemutil.ParseCertificates([]byte(resp.Certificate))
	eku := leaf[0].ExtKeyUsage
	if len(eku) != 2 || eku[0] != x509.ExtKeyUsageServerAuth || eku[1] != x509.ExtKeyUsageClientAuth ||
		leaf[0].DNSNames[0] != "gw.example.org" || !leaf[0].IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("gateway certificate: EKU %v DNS %v IP %v", eku, leaf[0].DNSNames, leaf[0].IPAddresses)
	}
	// A client identity may not ask for host names.
	_, err = e.client(nil).Enroll(ctx, e.newToken(svcID, 0), func() string {
		k, _ := keytype.Generate(keytype.ECDSAP256)
		p, _ := csr.CreateWithHosts(k, identity.MustParse(svcID), []string{"evil.example.org"}, nil)
		return string(p)
	}())
	wantAPIError(t, err, 400, "bad_csr", "csr: request has DNS SANs [evil.example.org] (only the SPIFFE ID is allowed)")
	// Renewal keeps the gateway profile.
	inter, _ := pemutil.ParseCertificates([]byte(resp.Chain))
	cur := tls.Certificate{Certificate: [][]byte{leaf[0].Raw, inter[0].Raw}, PrivateKey: key, Leaf: leaf[0]}
	k2, _ := keytype.Generate(keytype.ECDSAP256)
	csr2, _ := csr.CreateWithHosts(k2, identity.MustParse(gwID), []string{"gw.example.org"}, nil)
	resp2, err := e.client(&cur).Renew(ctx, string(csr2))
	if err != nil {
		t.Fatal(err)
	}
	leaf2, _ := pemutil.ParseCertificates([]byte(resp2.Certificate))
	if len(leaf2[0].ExtKeyUsage) != 2 || leaf2[0].DNSNames[0] != "gw.example.org" {
		t.Fatalf("renewed gateway certificate: %v %v", leaf2[0].ExtKeyUsage, leaf2[0].DNSNames)
	}

	// The role revoked behind the CA service's back (another replica, or
	// the store directly): the service's copy of the grants is stale, the
	// store's check refuses the gateway certificate it signed, and the
	// renewal is checked again with the grants as they are now: no host
	// names, client profile.
	grants, err := e.store.RoleGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range grants {
		if g.Role == roles.Gateway && roles.For([]roles.Grant{g}, gwID).Gateway {
			if err := e.store.RevokeRole(ctx, g, "test", e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	cur2 := tls.Certificate{Certificate: [][]byte{leaf2[0].Raw, inter[0].Raw}, PrivateKey: k2, Leaf: leaf2[0]}
	k3, _ := keytype.Generate(keytype.ECDSAP256)
	csr3, _ := csr.CreateWithHosts(k3, identity.MustParse(gwID), []string{"gw.example.org"}, nil)
	_, err = e.client(&cur2).Renew(ctx, string(csr3))
	wantAPIError(t, err, 400, "bad_csr", "csr: request has DNS SANs [gw.example.org] (only the SPIFFE ID is allowed)")
	csr4, _ := csr.Create(k3, identity.MustParse(gwID))
	resp4, err := e.client(&cur2).Renew(ctx, string(csr4))
	if err != nil {
		t.Fatal(err)
	}
	leaf4, _ := pemutil.ParseCertificates([]byte(resp4.Certificate))
	if eku := leaf4[0].ExtKeyUsage; len(eku) != 1 || eku[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("renewal after the role was revoked: EKU %v, want client only", eku)
	}
}

// TestGatewayEnrollAfterGrant: a gateway role granted after the CA service
// read its copy of the grants (here for an earlier enrollment) is seen by
// the next enrollment: its host names are not refused on the stale copy.
// The store is the real one (no storetest.Faulty): only a store that checks
// the role in its recording transaction makes the service keep a copy.
func TestGatewayEnrollAfterGrant(t *testing.T) {
	te := testenv.Start(t)
	ctx := context.Background()
	admin := te.Client(t, &te.AdminCert)
	// testenv grants every /gateway/ identity the role: not this time.
	if _, err := admin.RevokeRole(ctx, wire.RoleChange{Role: "gateway", Holder: "spiffe://" + te.TrustDomain + "/gateway/*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Client(t, nil).Enroll(ctx, te.Token(t, svcID, 0), newCSR(t, keytype.ECDSAP256, svcID)); err != nil {
		t.Fatal(err)
	}
	gwID := "spiffe://" + te.TrustDomain + "/gateway/late"
	if _, err := admin.GrantRole(ctx, wire.RoleChange{Role: "gateway", Holder: gwID}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateRoleToken(ctx, gwID, "gateway", 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keytype.Generate(keytype.ECDSAP256)
	csrPEM, _ := csr.CreateWithHosts(key, identity.MustParse(gwID), []string{"late.example.org"}, nil)
	resp, err := te.Client(t, nil).Enroll(ctx, tok.Token, string(csrPEM))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pemutil.ParseCertificates([]byte(resp.Certificate))
	if len(leaf[0].DNSNames) != 1 || leaf[0].DNSNames[0] != "late.example.org" {
		t.Fatalf("gateway certificate after a late grant: DNS %v", leaf[0].DNSNames)
	}
}

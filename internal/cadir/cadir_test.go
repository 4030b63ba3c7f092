package cadir

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/store"

	_ "modernc.org/sqlite"
)

var pass = []byte("a passphrase for tests")

func initDir(t *testing.T, kt keytype.Type) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := Init(context.Background(), InitOptions{Dir: dir, TrustDomain: "example.org", KeyType: kt, Passphrase: pass, Clock: clock.Real{}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitOpen(t *testing.T) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.Ed25519} {
		t.Run(string(kt), func(t *testing.T) {
			dir := initDir(t, kt)
			for _, f := range []string{"ca/root.key", "ca/intermediate.key", "admin/key.pem", "certgate.yaml", "certgate.db"} {
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v, want 0600", f, fi.Mode(), err)
				}
			}
			in, err := Open(context.Background(), dir, pass, clock.Real{})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			if in.Authority.TrustDomain() != "example.org" || len(in.Authority.Roots()) != 1 {
				t.Fatalf("opened %s with %d roots", in.Authority.TrustDomain(), len(in.Authority.Roots()))
			}
			recs, err := in.Store.AuditRecords(context.Background(), 0, 10)
			if err != nil || len(recs) != 4 || recs[0].Action != "ca.init" || recs[1].Action != "audit.key" || recs[2].Action != "role.grant" || recs[3].Action != "cert.issue" {
				t.Fatalf("audit after init: %+v %v", recs, err)
			}
			cert, _, _, err := AdminCredentials(dir)
			if err != nil || cert.Leaf == nil || !strings.HasSuffix(cert.Leaf.URIs[0].String(), "/admin/admin") {
				t.Fatalf("admin credentials: %v", err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := initDir(t, keytype.ECDSAP256)
	if _, err := Open(context.Background(), dir, []byte("wrong"), clock.Real{}); err == nil ||
		err.Error() != "cadir: "+filepath.Join(dir, "ca/intermediate.key")+": wrong passphrase" {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Open(context.Background(), dir, nil, clock.Real{}); err == nil ||
		err.Error() != "cadir: no passphrase: set CERTGATE_PASSPHRASE or --passphrase-file" {
		t.Fatalf("no passphrase: %v", err)
	}
	// A key file swapped for another CA's does not match the intermediate
	// the store records.
	other := initDir(t, keytype.ECDSAP256)
	b, _ := os.ReadFile(filepath.Join(other, "ca/intermediate.key"))
	os.WriteFile(filepath.Join(dir, "ca/intermediate.key"), b, 0o600)
	_, err := Open(context.Background(), dir, pass, clock.Real{})
	if err == nil || !strings.HasPrefix(err.Error(), "ca: intermediate 1 (") || !strings.HasSuffix(err.Error(), "): ca: private key does not match certificate") {
		t.Fatalf("foreign intermediate key: %v", err)
	}
}

// forgetCA makes dir look like an installation made before the store
// recorded CA certificates and issuers.
func forgetCA(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DELETE FROM ca_certificates`, `UPDATE certificates SET issuer = ''`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAdoptLegacy: an installation whose store has no CA rows (made by an
// older certgate) is adopted from its files at the first Open: generation
// 1, active, every certificate given the intermediate as issuer, audited.
// Files that do not fit together are refused and nothing is recorded.
func TestAdoptLegacy(t *testing.T) {
	ctx := context.Background()
	dir := initDir(t, keytype.ECDSAP256)
	forgetCA(t, dir)
	other := initDir(t, keytype.ECDSAP256)
	saved, _ := os.ReadFile(filepath.Join(dir, "ca/intermediate.pem"))
	b, _ := os.ReadFile(filepath.Join(other, "ca/intermediate.pem"))
	os.WriteFile(filepath.Join(dir, "ca/intermediate.pem"), b, 0o644)
	_, err := Open(ctx, dir, pass, clock.Real{})
	if err == nil || !strings.HasPrefix(err.Error(), "cadir: intermediate is not signed by the root: ") {
		t.Fatalf("foreign intermediate: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca/intermediate.pem"), saved, 0o644)
	root, _ := os.ReadFile(filepath.Join(dir, "ca/root.pem"))
	os.WriteFile(filepath.Join(dir, "ca/root.pem"), []byte("garbage"), 0o644)
	_, err = Open(ctx, dir, pass, clock.Real{})
	if err == nil || err.Error() != "cadir: "+filepath.Join(dir, "ca/root.pem")+": pemutil: no PEM data found" {
		t.Fatalf("garbage root: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca/root.pem"), root, 0o644)

	in, err := Open(ctx, dir, pass, clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rows, err := in.Store.ListCAs(ctx)
	if err != nil || len(rows) != 2 || rows[0].Kind != "intermediate" || rows[0].State != "active" || rows[0].KeyURI != "file:ca/intermediate.key" ||
		rows[1].Kind != "root" || rows[1].KeyURI != "file:ca/root.key" {
		t.Fatalf("adopted rows %+v, %v", rows, err)
	}
	certs, err := in.Store.ListCertificates(ctx, store.CertFilter{})
	if err != nil || len(certs) != 1 || certs[0].Issuer != rows[0].KeyID {
		t.Fatalf("admin certificate issuer after adoption: %+v %v", certs, err)
	}
	recs, _ := in.Store.AuditRecords(ctx, 0, 0)
	if last := recs[len(recs)-1]; last.Action != "ca.adopt" {
		t.Errorf("last audit record %+v, want ca.adopt", last)
	}
}

func TestInitRefusesAndCleansUp(t *testing.T) {
	dir := initDir(t, keytype.ECDSAP256)
	err := Init(context.Background(), InitOptions{Dir: dir, TrustDomain: "example.org", Passphrase: pass})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v", err)
	}
	err = Init(context.Background(), InitOptions{Dir: filepath.Join(t.TempDir(), "x"), TrustDomain: "example.org"})
	if err == nil || err.Error() != "cadir: empty passphrase refused: set CERTGATE_PASSPHRASE or --passphrase-file" {
		t.Fatalf("empty passphrase: %v", err)
	}
	// A failure after files were written leaves nothing behind: the store
	// URL points into a file, so opening the store fails late.
	bad := filepath.Join(t.TempDir(), "bad")
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, []byte("x"), 0o600)
	err = Init(context.Background(), InitOptions{Dir: bad, TrustDomain: "example.org", Passphrase: pass, Store: "sqlite://" + blocker + "/sub/c.db"})
	if err == nil || !strings.HasPrefix(err.Error(), "cadir: open store: ") {
		t.Fatalf("bad store: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("failed init left %s behind", bad)
	}
}

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

// serveDir serves the certgate directory dir in-process; stop ends it and
// waits.
func serveDir(t *testing.T, dir string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, slog.New(slog.DiscardHandler), dir, "", []byte(testPassphrase), func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// setStore points the config in dir at another store.
func setStore(t *testing.T, dir, url string) {
	t.Helper()
	p := filepath.Join(dir, "certgate.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^store: .*$`)
	if !re.Match(b) {
		t.Fatalf("no store line in %s", p)
	}
	if err := os.WriteFile(p, re.ReplaceAll(b, []byte("store: "+url)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMigratePostgres: certgate migrate creates the schema of an empty
// PostgreSQL store, does nothing the second time, and refuses a schema
// newer than it knows. (SQLite and the usage errors: testdata/migrate.txt.)
func TestMigratePostgres(t *testing.T) {
	u := storetest.PostgresURL(t)
	shown := redactStore(u)
	if got := mustCLI(t, "migrate", "--store", u); got != "store "+shown+": schema migrated from version 0 to "+latestSchema+"\n" {
		t.Errorf("first migrate printed %q", got)
	}
	if got := mustCLI(t, "migrate", "--store", u); got != "store "+shown+": schema already at version "+latestSchema+"\n" {
		t.Errorf("second migrate printed %q", got)
	}
	raw, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future', 0)`); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cli(t, "migrate", "--store", u)
	if want := "certgate: store: database schema is newer than this certgate: it is at version 99, this certgate knows up to " + latestSchema + "; upgrade certgate\n"; code != 1 || stderr != want {
		t.Errorf("migrate of a newer schema: exit %d, %q", code, stderr)
	}
}

func TestRedactStore(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://certgate:s3cret@db:5432/certgate?sslmode=require": "postgres://certgate:xxxxx@db:5432/certgate?sslmode=require",
		"postgres://certgate@db/certgate?password=s3cret":             "postgres://certgate@db/certgate?password=xxxxx",
		"sqlite:///var/lib/certgate/certgate.db":                      "sqlite:///var/lib/certgate/certgate.db",
	} {
		if got := redactStore(in); got != want {
			t.Errorf("redactStore(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStoreCopyToPostgres moves a working SQLite installation to
// PostgreSQL: the target holds the same certificates, revocations, tokens,
// events and audit records, its audit chain verifies, and a server started
// on it lists the same inventory and carries on (enrollment, revocation).
// A second copy into the now non-empty target is refused and changes
// nothing.
func TestStoreCopyToPostgres(t *testing.T) {
	pg := storetest.PostgresURL(t)
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t))
	stop := serveDir(t, dir)
	var serials []string
	for i := range 6 {
		id := fmt.Sprintf("spiffe://example.org/svc/app%d", i)
		tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", id, "--ttl", "10m"))
		out := filepath.Join(t.TempDir(), "c")
		mustCLI(t, "enroll", "--token", tok, "--out", out)
		serials = append(serials, testenv.ReadLeaf(t, out).SerialNumber.Text(16))
	}
	mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/later", "--ttl", "10m") // unused
	for _, s := range serials[:3] {
		mustCLI(t, "cert", "revoke", "--dir", dir, "--serial", s, "--reason", "keyCompromise")
	}
	listJSON := func() []wire.Certificate {
		var list []wire.Certificate
		if err := json.Unmarshal([]byte(mustCLI(t, "cert", "list", "--dir", dir, "--json")), &list); err != nil {
			t.Fatal(err)
		}
		return list
	}
	before := listJSON()
	auditBefore := mustCLI(t, "audit", "verify", "--dir", dir)
	stop()

	from := "sqlite://" + filepath.Join(dir, "certgate.db")
	out := mustCLI(t, "store", "copy", "--from", from, "--to", pg)
	ctx := context.Background()
	src, err := store.OpenSQLite(ctx, filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := store.OpenPostgres(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	inv, err := src.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := fmt.Sprintf("copied %s -> %s\n  certificates:  %d\n  revocations:   3\n  tokens:        7\n  events:        %d (last position %d)\n  CA:            2 certificates, 0 rotations\n  audit records: %d, chain verified on the target, head %x\nnext: set \"store: %s\" in certgate.yaml of every server, then start them\n",
		from, redactStore(pg), inv.Certificates, inv.Events, inv.LastPosition, inv.AuditRecords, inv.AuditHead, redactStore(pg))
	if out != wantOut {
		t.Fatalf("store copy printed\n%s\nwant\n%s", out, wantOut)
	}
	for name, read := range map[string]func(store.Store) (any, error){
		"certificates": func(s store.Store) (any, error) { return s.ListCertificates(ctx, store.CertFilter{}) },
		"events":       func(s store.Store) (any, error) { return s.Events(ctx, 0, 0) },
		"audit":        func(s store.Store) (any, error) { return s.AuditRecords(ctx, 0, 0) },
	} {
		a, errA := read(src)
		b, errB := read(dst)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differ after the copy (%v, %v)", name, errA, errB)
		}
	}

	// A second copy into the populated target is refused; nothing changes.
	_, stderr, code := cli(t, "store", "copy", "--from", from, "--to", pg)
	if code != 1 || stderr != "certgate: store: copy: target store is not empty: it holds "+inv.String()+"; copy only into a new database\n" {
		t.Fatalf("second copy: exit %d, %s", code, stderr)
	}
	if again, err := dst.Inventory(ctx); err != nil || !again.Equal(inv) {
		t.Fatalf("target after the refused copy: %s, %v", again, err)
	}

	// A server on PostgreSQL serves the copied installation.
	setStore(t, dir, pg)
	serveDir(t, dir)
	after := listJSON()
	byserial := map[string]wire.Certificate{}
	for _, c := range after {
		byserial[c.Serial] = c
	}
	for _, c := range before {
		if got := byserial[c.Serial]; !reflect.DeepEqual(got, c) {
			t.Errorf("certificate %s on PostgreSQL:\n got %+v\nwant %+v", c.Serial, got, c)
		}
	}
	mustCLI(t, "cert", "revoke", "--dir", dir, "--serial", serials[3], "--reason", "superseded")
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/new", "--ttl", "10m"))
	mustCLI(t, "enroll", "--token", tok, "--out", filepath.Join(t.TempDir(), "new"))
	auditAfter := mustCLI(t, "audit", "verify", "--dir", dir)
	var nBefore, nAfter int
	fmt.Sscanf(auditBefore, "OK: %d audit records", &nBefore)
	fmt.Sscanf(auditAfter, "OK: %d audit records", &nAfter)
	if !strings.HasPrefix(auditAfter, "OK: ") || nAfter < nBefore+3 {
		t.Fatalf("audit verify on PostgreSQL after new writes: %q (before the copy: %q)", auditAfter, auditBefore)
	}
	evs, err := dst.Events(ctx, 0, 0)
	if err != nil || len(evs) != int(inv.Events)+1 || evs[len(evs)-1].Position != inv.LastPosition+1 || evs[len(evs)-1].Serial != serials[3] {
		t.Fatalf("events on PostgreSQL: %+v %v; want the new revocation at position %d", evs, err, inv.LastPosition+1)
	}
}

// TestInitRefusesNonEmptyPostgres: a second installation pointed at a
// PostgreSQL store that already holds one is refused, and the first one's
// store is unchanged.
func TestInitRefusesNonEmptyPostgres(t *testing.T) {
	pg := storetest.PostgresURL(t)
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	first := filepath.Join(t.TempDir(), "first")
	mustCLI(t, "init", "--dir", first, "--trust-domain", "example.org", "--store", pg)
	st, err := store.OpenPostgres(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, err := st.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second")
	_, stderr, code := cli(t, "init", "--dir", second, "--trust-domain", "other.org", "--store", pg)
	want := "certgate: cadir: directory already holds a certgate installation: the store already holds one (" + before.String() + "); use an empty database or schema\n"
	if code != 1 || stderr != want {
		t.Fatalf("second init: exit %d %q\nwant %q", code, stderr, want)
	}
	after, err := st.Inventory(context.Background())
	if err != nil || !after.Equal(before) {
		t.Fatalf("store changed: %v -> %v (%v)", before, after, err)
	}
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Fatalf("refused init left %s behind", second)
	}
}

// latestSchema is the schema version migrate prints.
var latestSchema = fmt.Sprint(store.LatestSchemaVersion())

package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/agent"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/auditsign"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/checkpoint"
	"github.com/certgate/certgate/internal/config"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/syslog/syslogtest"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

// auditDB is the store of a certgate directory opened with database/sql,
// to tamper with it the way a database administrator could.
type auditDB struct {
	db *sql.DB
	pg bool
}

func (a auditDB) q(query string) string {
	if !a.pg {
		return query
	}
	n := 0
	return regexp.MustCompile(`\?`).ReplaceAllStringFunc(query, func(string) string { n++; return fmt.Sprintf("$%d", n) })
}

func (a auditDB) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := a.db.Exec(a.q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (a auditDB) records(t *testing.T) []audit.Record {
	t.Helper()
	rows, err := a.db.Query(`SELECT seq, time, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r audit.Record
		var ns int64
		if err := rows.Scan(&r.Seq, &ns, &r.Actor, &r.Action, &r.Subject, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
			t.Fatal(err)
		}
		r.Time = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// restore puts the audit table back as recs.
func (a auditDB) restore(t *testing.T, recs []audit.Record) {
	t.Helper()
	a.exec(t, `DELETE FROM audit`)
	for _, r := range recs {
		a.exec(t, `INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Seq, r.Time.UnixNano(), r.Actor, r.Action, r.Subject, r.Detail, r.PrevHash, r.Hash)
	}
}

// setAudit sets the audit section's checkpoint cadence in dir's config.
func setAudit(t *testing.T, dir string, every int, interval string) {
	t.Helper()
	p := filepath.Join(dir, config.FileName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^  checkpoint_every: .*$`).ReplaceAll(b, []byte(fmt.Sprintf("  checkpoint_every: %d", every)))
	b = regexp.MustCompile(`(?m)^  checkpoint_interval: .*$`).ReplaceAll(b, []byte("  checkpoint_interval: "+interval))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// publicGet fetches a public path of dir's server, trusting its bundle.
func publicGet(t *testing.T, dir, path string) (int, []byte) {
	t.Helper()
	_, roots, cfg, err := cadir.AdminCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(cfg.Listen.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// waitCheckpoint waits until the server's checkpoint covers want records.
func waitCheckpoint(t *testing.T, dir string, v *checkpoint.Verifier, want int64) checkpoint.Signed {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, note := publicGet(t, dir, wire.PathAuditCheckpoint)
		if code == http.StatusOK {
			s, err := v.Verify(note)
			if err != nil {
				t.Fatalf("served checkpoint: %v\n%s", err, note)
			}
			if s.Size >= want {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d records after 60 s (last answer %d %s)", want, code, note)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func auditVerifier(t *testing.T, dir string) *checkpoint.Verifier {
	t.Helper()
	cfg, err := config.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.Path(cfg.Audit.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := checkpoint.ParsePublicKey(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(cfg.CheckpointName(), pub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAuditTamperingSQLite and TestAuditTamperingPostgres: each kind of
// tampering a database administrator can do with SQL is found by
// certgate audit verify, which names the first bad record and exits 1;
// the log put back, it passes again.
func TestAuditTamperingSQLite(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t))
	db, err := sql.Open("sqlite", filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	auditTampering(t, dir, auditDB{db: db})
}

func TestAuditTamperingPostgres(t *testing.T) {
	u := storetest.PostgresURL(t)
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t), "--store", u)
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	auditTampering(t, dir, auditDB{db: db, pg: true})
}

func auditTampering(t *testing.T, dir string, db auditDB) {
	setAudit(t, dir, 3, "1s")
	serveDir(t, dir)
	v := auditVerifier(t, dir)

	// Some history: tokens, enrollments, a revocation.
	var serials []string
	for i := range 3 {
		tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", fmt.Sprintf("spiffe://example.org/svc/s%d", i), "--ttl", "10m"))
		out := filepath.Join(t.TempDir(), fmt.Sprint(i))
		mustCLI(t, "enroll", "--token", tok, "--out", out)
		serials = append(serials, testenv.ReadLeaf(t, out).SerialNumber.Text(16))
	}
	mustCLI(t, "cert", "revoke", "--dir", dir, "--serial", serials[0], "--reason", "keyCompromise")

	orig := db.records(t)
	n := int64(len(orig))
	newest := waitCheckpoint(t, dir, v, n)
	if newest.Size != n {
		t.Fatalf("checkpoint of %d records, the log has %d", newest.Size, n)
	}
	out := mustCLI(t, "audit", "verify", "--dir", dir)
	if !strings.HasPrefix(out, fmt.Sprintf("OK: %d audit records, chain intact, head ", n)) || !strings.Contains(out, "checkpoints matched (newest checkpoint "+fmt.Sprint(n)+" records") {
		t.Fatalf("audit verify of an intact log:\n%s", out)
	}

	// The checkpoint file: every N records (3) and the head.
	cfg, _ := config.LoadServer(dir)
	var sizes []int64
	data, _ := os.ReadFile(cfg.Path(cfg.Audit.Checkpoints))
	notes, err := checkpoint.Notes(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, note := range notes {
		s, err := v.Verify(note)
		if err != nil {
			t.Fatalf("checkpoint file: %v", err)
		}
		sizes = append(sizes, s.Size)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i]-sizes[i-1] > 3 || sizes[i] < sizes[i-1] {
			t.Fatalf("checkpoint sizes %v: a gap above checkpoint_every (3)", sizes)
		}
	}
	// lastBelow is the largest checkpointed size below seq.
	lastBelow := func(seq int64) int64 {
		var m int64
		for _, s := range sizes {
			if s < seq && s > m {
				m = s
			}
		}
		return m
	}

	k := orig[n/2].Seq // a record in the middle
	rehash := func(recs []audit.Record, from int) {
		for i := from; i < len(recs); i++ {
			if i > 0 {
				recs[i].PrevHash = recs[i-1].Hash
			}
			recs[i].Hash = audit.Link(recs[i])
			db.exec(t, `UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, recs[i].Actor, recs[i].PrevHash, recs[i].Hash, recs[i].Seq)
		}
	}
	fixedSerial := "7a3e00000000000000000000000000ff"
	for _, tc := range []struct {
		name   string
		tamper func()
		want   string
	}{
		{"changed record", func() {
			db.exec(t, `UPDATE audit SET actor = 'spiffe://example.org/admin/mallory' WHERE seq = ?`, k)
		}, fmt.Sprintf("FAIL: audit: record %d: hash mismatch: contents changed after it was written", k)},
		{"deleted middle record", func() {
			db.exec(t, `DELETE FROM audit WHERE seq = ?`, k)
		}, fmt.Sprintf("FAIL: audit: record %d: expected record %d, found %d (record deleted or reordered)", k, k, k+1)},
		{"truncated tail", func() {
			db.exec(t, `DELETE FROM audit WHERE seq > ?`, n-2)
		}, fmt.Sprintf("FAIL: audit: record %d: missing: the checkpoint signed at %s covers %d records, the log has %d (records %d to %d deleted from the end)",
			n-1, newest.Time.UTC().Format(time.RFC3339), n, n-2, n-1, n)},
		{"rewritten chain", func() {
			recs := slices.Clone(orig)
			recs[k-1].Actor = "spiffe://example.org/admin/mallory"
			rehash(recs, int(k-1))
		}, fmt.Sprintf("FAIL: audit: record %d: the chain was rewritten at or after this record: records %d to ", lastBelow(k)+1, lastBelow(k)+1)},
		{"certificate without a record", func() {
			db.exec(t, `INSERT INTO certificates (serial, identity, common_name, fingerprint, not_before, not_after, key_type, obtained, renewed_from, token_id, issued_at, der, issuer)
				SELECT ?, 'spiffe://example.org/admin/backdoor', common_name, 'ff00', not_before, not_after, key_type, obtained, renewed_from, token_id, issued_at, der, issuer FROM certificates WHERE serial = ?`, fixedSerial, serials[1])
		}, "FAIL: certificate " + fixedSerial + " (spiffe://example.org/admin/backdoor) issued at "},
		{"revocation without a record", func() {
			db.exec(t, `INSERT INTO revocations (serial, reason, revoked_at, revoked_by) VALUES (?, 1, ?, 'spiffe://example.org/admin/mallory')`, serials[2], time.Now().UnixNano())
		}, "FAIL: revocation " + serials[2] + " (spiffe://example.org/svc/s2) revoked at "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper()
			stdout, stderr, code := cli(t, "audit", "verify", "--dir", dir)
			if code != 1 || !strings.Contains(stdout, tc.want) {
				t.Fatalf("exit %d\n%s%s\nwant a line starting %q", code, stdout, stderr, tc.want)
			}
			db.exec(t, `DELETE FROM certificates WHERE serial = ?`, fixedSerial)
			db.exec(t, `DELETE FROM revocations WHERE serial = ?`, serials[2])
			db.restore(t, orig)
			if out := mustCLI(t, "audit", "verify", "--dir", dir); !strings.HasPrefix(out, "OK: ") {
				t.Fatalf("after putting it back: %s", out)
			}
		})
	}

	// The same checks against a witness's copy of one checkpoint only.
	wfile := filepath.Join(t.TempDir(), "witness")
	os.WriteFile(wfile, newest.Note(), 0o644)
	db.exec(t, `DELETE FROM audit WHERE seq = ?`, n)
	stdout, _, code := cli(t, "audit", "verify", "--dir", dir, "--checkpoint", wfile)
	if want := fmt.Sprintf("FAIL: audit: record %d: missing: the checkpoint signed at", n); code != 1 || !strings.Contains(stdout, want) {
		t.Fatalf("--checkpoint FILE: exit %d %s", code, stdout)
	}
	db.restore(t, orig)
	// A forged checkpoint is refused, not believed.
	forged := bytes.Replace(newest.Note(), []byte(fmt.Sprintf("\n%d\n", n)), []byte(fmt.Sprintf("\n%d\n", n+5)), 1)
	os.WriteFile(wfile, forged, 0o644)
	stdout, _, code = cli(t, "audit", "verify", "--dir", dir, "--checkpoint", wfile)
	if code != 1 || !strings.Contains(stdout, "FAIL: auditcheck: checkpoint "+wfile+", note 1: checkpoint: signature does not verify") {
		t.Fatalf("forged checkpoint: exit %d %s", code, stdout)
	}
	// --checkpoint URL: the server's own.
	_, _, acfg, _ := cadir.AdminCredentials(dir)
	if out := mustCLI(t, "audit", "verify", "--dir", dir, "--checkpoint", acfg.Listen.URL+wire.PathAuditCheckpoint); !strings.Contains(out, "OK: 1 checkpoints matched") {
		t.Fatalf("--checkpoint URL: %s", out)
	}
}

// TestAuditCheckpointOpenSSL: the checkpoint served at
// GET /v1/audit/checkpoint verifies with openssl from the key served at
// GET /v1/audit/key (no authentication for either), and a changed size
// does not.
func TestAuditCheckpointOpenSSL(t *testing.T) {
	openssl := testenv.RequirePeer(t, "openssl")
	dir := startServer(t)
	code, note := publicGet(t, dir, wire.PathAuditCheckpoint)
	if code != http.StatusOK {
		t.Fatalf("GET checkpoint: %d %s", code, note)
	}
	code, key := publicGet(t, dir, wire.PathAuditKey)
	if code != http.StatusOK || !bytes.HasPrefix(key, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("GET key: %d %s", code, key)
	}
	cfg, _ := config.LoadServer(dir)
	if onDisk, _ := os.ReadFile(cfg.Path(cfg.Audit.PublicKey)); !bytes.Equal(onDisk, key) {
		t.Fatalf("served key differs from %s", cfg.Audit.PublicKey)
	}
	// The note: text, a blank line, "— NAME base64(keyID || signature)".
	i := bytes.LastIndex(note, []byte("\n\n"))
	text := note[:i+1]
	line := strings.TrimSpace(string(note[i+2:]))
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "—" || fields[1] != "example.org/certgate/audit" {
		t.Fatalf("signature line %q", line)
	}
	blob, err := base64.StdEncoding.DecodeString(fields[2])
	if err != nil || len(blob) != 4+64 {
		t.Fatalf("signature blob: %d bytes, %v", len(blob), err)
	}
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, txt, sig := write("audit.pub.pem", key), write("text", text), write("sig", blob[4:])
	out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", txt, "-sigfile", sig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl pkeyutl -verify: %v\n%s", err, out)
	}
	lines := strings.SplitN(string(text), "\n", 3)
	forged := write("forged", []byte(lines[0]+"\n"+lines[1]+"0\n"+lines[2]))
	out, err = exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", forged, "-sigfile", sig).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Signature Verification Failure") {
		t.Fatalf("openssl accepted a changed size: %v\n%s", err, out)
	}
}

// TestAuditKeyUpgrade: an installation made before audit keys (no key,
// no audit section in its config, no audit.key record) gets a key at its
// first start, recorded in the audit log, and checkpoints from then on. A
// replica with its own copy of the directory then refuses to start until
// it has that key: without one, and with another.
func TestAuditKeyUpgrade(t *testing.T) {
	t.Setenv("CERTGATE_PASSPHRASE", testPassphrase)
	dir := filepath.Join(t.TempDir(), "ca")
	mustCLI(t, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", freeAddr(t))
	cfgPath := filepath.Join(dir, config.FileName)
	b, _ := os.ReadFile(cfgPath)
	old := regexp.MustCompile(`(?ms)^audit:\n.*?\n\n`).ReplaceAll(b, nil)
	if bytes.Contains(old, []byte("audit:")) {
		t.Fatalf("audit section not removed:\n%s", old)
	}
	os.WriteFile(cfgPath, old, 0o600)
	for _, f := range []string{"ca/audit.key", "ca/audit.pub.pem"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The log as an older certgate wrote it: no audit.key record.
	sdb, err := sql.Open("sqlite", filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	db := auditDB{db: sdb}
	var olds []audit.Record
	var prev *audit.Record
	for _, r := range db.records(t) {
		if r.Action == audit.ActionAuditKey {
			continue
		}
		n := audit.Next(prev, r.Entry)
		olds = append(olds, n)
		prev = &olds[len(olds)-1]
	}
	db.restore(t, olds)

	// A replica's copy of the directory, made before the upgrade, on the
	// same store.
	replica := filepath.Join(t.TempDir(), "replica")
	copyDir(t, dir, replica)
	setStore(t, replica, "sqlite://"+filepath.Join(dir, "certgate.db"))

	stop := serveDir(t, dir)
	fi, err := os.Stat(filepath.Join(dir, "ca/audit.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit key after upgrade: %v %v", fi, err)
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "ca/audit.key"))
	if !bytes.Contains(keyPEM, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatal("the audit key is not encrypted at rest")
	}
	v := auditVerifier(t, dir)
	waitCheckpoint(t, dir, v, 1)
	cl, err := adminClient(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cl.AuditRecords(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keyRecs []wire.AuditRecord
	for _, r := range recs {
		if r.Action == audit.ActionAuditKey {
			keyRecs = append(keyRecs, r)
		}
	}
	pubPEM, _ := os.ReadFile(filepath.Join(dir, "ca/audit.pub.pem"))
	var detail map[string]string
	if len(keyRecs) != 1 || json.Unmarshal([]byte(keyRecs[0].Detail), &detail) != nil || detail["made_by"] != "upgrade" || detail["public_key"] != string(pubPEM) {
		t.Fatalf("audit.key records: %+v", keyRecs)
	}
	if out := mustCLI(t, "audit", "verify", "--dir", dir); !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("audit verify after the upgrade: %s", out)
	}
	stop()

	serve := func() error {
		return runServer(context.Background(), slog.New(slog.DiscardHandler), replica, "127.0.0.1:0", []byte(testPassphrase), func(string) { t.Fatal("the replica started") })
	}
	want := fmt.Sprintf("cadir: %s does not exist, but the audit log records an audit key (record %d, made by system): copy ca/audit.key and ca/audit.pub.pem from the certgate directory that made it",
		filepath.Join(replica, "ca/audit.key"), keyRecs[0].Seq)
	if err := serve(); err == nil || err.Error() != want {
		t.Fatalf("replica without the key: %v\nwant %s", err, want)
	}
	if _, _, err := auditsign.EnsureKey(filepath.Join(replica, "ca/audit.key"), filepath.Join(replica, "ca/audit.pub.pem"), []byte(testPassphrase)); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("cadir: %s is not the audit key the audit log records (record %d): copy ca/audit.key and ca/audit.pub.pem from the certgate directory that made it",
		filepath.Join(replica, "ca/audit.key"), keyRecs[0].Seq)
	if err := serve(); err == nil || err.Error() != want {
		t.Fatalf("replica with another key: %v\nwant %s", err, want)
	}
	if n := len(db.records(t)); n != int(recs[len(recs)-1].Seq) {
		t.Fatalf("a refused replica wrote to the log: %d records, %d before", n, recs[len(recs)-1].Seq)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if strings.HasPrefix(rel, "certgate.db") {
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		return os.WriteFile(filepath.Join(to, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditExport: certgate audit export writes JSON lines and CEF from a
// seq on, and with --syslog sends the log over TLS to a collector from
// where it stopped: a clean stop and start sends nothing twice, a
// collector outage loses nothing.
func TestAuditExport(t *testing.T) {
	dir := startServer(t)
	for i := range 3 {
		mustCLI(t, "token", "create", "--dir", dir, "--identity", fmt.Sprintf("spiffe://example.org/svc/e%d", i), "--ttl", "10m")
	}
	var recs []wire.AuditRecord
	for _, line := range strings.Split(strings.TrimSuffix(mustCLI(t, "audit", "export", "--dir", dir), "\n"), "\n") {
		var r wire.AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("json line %q: %v", line, err)
		}
		if r.Seq != int64(len(recs)+1) {
			t.Fatalf("seq %d after %d records", r.Seq, len(recs))
		}
		recs = append(recs, r)
	}
	n := len(recs)
	if n < 7 || recs[n-1].Action != audit.ActionTokenCreate {
		t.Fatalf("%d records, last %+v", n, recs[n-1])
	}
	cef := strings.Split(strings.TrimSuffix(mustCLI(t, "audit", "export", "--dir", dir, "--since", "2", "--format", "cef"), "\n"), "\n")
	if len(cef) != n-2 || !strings.HasPrefix(cef[0], "CEF:0|certgate|certgate|") || !strings.Contains(cef[0], " externalId=3 ") ||
		!strings.Contains(cef[len(cef)-1], "|token.create|token.create|5|") || !strings.Contains(cef[len(cef)-1], "cs2="+recs[n-1].Hash) {
		t.Fatalf("cef:\n%s", strings.Join(cef, "\n"))
	}
	if _, stderr, code := cli(t, "audit", "export", "--dir", dir, "--format", "xml"); code != 1 || !strings.Contains(stderr, `format "xml" is not json or cef`) {
		t.Fatalf("bad format: %d %s", code, stderr)
	}

	// The syslog sink, over TLS with a client certificate.
	ca := testca.New(t, "example.org")
	srv := ca.Issue(t, testca.Server("spiffe://example.org/collector"), testca.WithIPs(net.ParseIP("127.0.0.1")))
	cl := ca.Issue(t, testca.WithID("spiffe://example.org/svc/exporter"))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	r := syslogtest.Start(t, &tls.Config{Certificates: []tls.Certificate{srv.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	tmp := t.TempDir()
	caFile, certFile, keyFile, state := filepath.Join(tmp, "ca.pem"), filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem"), filepath.Join(tmp, "state")
	os.WriteFile(caFile, pemutil.EncodeCertificates(ca.Root), 0o644)
	tc := cl.TLSCertificate()
	var chain []*x509.Certificate
	for _, der := range tc.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	os.WriteFile(certFile, pemutil.EncodeCertificates(chain...), 0o644)
	keyPEM, err := pemutil.EncodePrivateKey(tc.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keyFile, keyPEM, 0o600)
	export := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var out, errb bytes.Buffer
		go func() {
			done <- run(ctx, []string{"audit", "export", "--dir", dir, "--syslog", r.Addr, "--syslog-ca", caFile, "--syslog-cert", certFile,
				"--syslog-key", keyFile, "--state", state, "--hostname", "ca1"}, strings.NewReader(""), &out, &errb)
		}()
		return func() {
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("audit export --syslog: exit %d\n%s%s", code, out.String(), errb.String())
			}
		}
	}
	seqs := func() []int64 {
		var out []int64
		for _, m := range r.Messages() {
			if m.AppName != "certgate-audit" || m.Hostname != "ca1" || len(m.StructuredData) != 1 || !strings.HasPrefix(string(m.Msg), "CEF:0|certgate|") {
				t.Fatalf("message %+v", m)
			}
			s, _ := strconv.ParseInt(m.StructuredData[0].Params[0].Value, 10, 64)
			out = append(out, s)
		}
		return out
	}
	want := func(upTo int) string {
		var w []int64
		for i := 1; i <= upTo; i++ {
			w = append(w, int64(i))
		}
		return fmt.Sprint(w)
	}
	waitState := func(seq int) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			if b, _ := os.ReadFile(state); strings.TrimSpace(string(b)) == fmt.Sprint(seq) {
				return
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(state)
				t.Fatalf("state %q, want %d (collector has %v)", b, seq, seqs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stop := export()
	r.WaitCount(n, 60*time.Second)
	waitState(n)
	stop()
	if got := seqs(); fmt.Sprint(got) != want(n) {
		t.Fatalf("first run sent %v, want %s (collector errors: %v)", got, want(n), r.Errors())
	}
	// Stopped, two records more; started again: only those are sent.
	mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/f1", "--ttl", "10m")
	mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/f2", "--ttl", "10m")
	stop = export()
	r.WaitCount(n+2, 60*time.Second)
	waitState(n + 2)
	// The collector goes away; a record meanwhile; it comes back.
	r.Stop()
	mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/f3", "--ttl", "10m")
	time.Sleep(1500 * time.Millisecond)
	r.Restart()
	r.WaitCount(n+3, 60*time.Second)
	waitState(n + 3)
	stop()
	if got := seqs(); fmt.Sprint(got) != want(n+3) {
		t.Fatalf("sent %v, want each of 1..%d once", got, n+3)
	}
}

// TestAgentWitness: certgate agent remembers the server's audit checkpoint
// in DIR/audit-checkpoint; shown one that does not extend what it
// remembers (here the witness remembers a later checkpoint, signed with
// the audit key, than the server can show: the server's log is "shorter"),
// it logs the refusal, counts it in agent-status.json and keeps its memory.
func TestAgentWitness(t *testing.T) {
	dir := startServer(t)
	tok := strings.TrimSpace(mustCLI(t, "token", "create", "--dir", dir, "--identity", "spiffe://example.org/svc/w", "--ttl", "10m"))
	out := filepath.Join(t.TempDir(), "client")
	mustCLI(t, "enroll", "--token", tok, "--out", out)
	witness := filepath.Join(out, "audit-checkpoint")
	_, errs, stop := startAgent(t, "--dir", out)
	waitFor(t, "the witness file", func() bool {
		st, err := agent.ReadStatus(out)
		return err == nil && st.AuditCheckpoint > 0
	})
	stop()
	v := auditVerifier(t, dir)
	note, _ := os.ReadFile(witness)
	seen, err := v.Verify(note)
	if err != nil {
		t.Fatalf("the witness's memory: %v\n%s", err, note)
	}
	if pub, _ := os.ReadFile(witness + ".pub.pem"); !bytes.Equal(pub, mustRead(t, filepath.Join(dir, "ca/audit.pub.pem"))) {
		t.Fatal("the witness pinned another key")
	}
	// A checkpoint of 100 more records than the log has, as if the log
	// had been truncated since the witness saw it.
	key, err := auditsign.LoadKey(filepath.Join(dir, "ca/audit.key"), []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner("example.org/certgate/audit", key)
	later, err := signer.Sign(checkpoint.Checkpoint{Size: seen.Size + 100, Hash: bytes.Repeat([]byte{7}, 32), Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(witness, later.Note(), 0o644)
	_, errs, stop = startAgent(t, "--dir", out)
	waitFor(t, "the alarm", func() bool {
		st, err := agent.ReadStatus(out)
		return err == nil && st.AuditAlarms == 1
	})
	stop()
	st, _ := agent.ReadStatus(out)
	if !strings.Contains(st.AuditError, fmt.Sprintf("is below the earlier %d (records removed)", seen.Size+100)) ||
		!strings.Contains(errs.String(), "does not extend the one this witness saw") {
		t.Fatalf("status %+v\nlog:\n%s", st, errs)
	}
	if !bytes.Equal(mustRead(t, witness), later.Note()) {
		t.Fatal("the refused checkpoint replaced the witness's memory")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor is eventually with room for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

package integration

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/cadir"
	"github.com/certgate/certgate/internal/csr"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/wire"
)

// TestCrashDurability SIGKILLs a real "certgate server" process in the
// middle of a burst of concurrent enrollments, restarts it on the same
// directory, three times over, and checks what issue 2 promises: every certificate a client
// received is in the store with the same fingerprint, no serial repeats,
// every stored certificate has its audit record, the audit chain verifies,
// and a token is redeemed exactly when a certificate was recorded for it.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the certgate binary; skipped with -short")
	}
	const (
		tokens  = 320 // minted; the kills land long before all are used
		workers = 16  // concurrent enrollment clients
		killAt  = 40  // successful enrollments before each kill
		rounds  = 3   // kill, restart, kill again...
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin := testenv.Certgate(t)
	dir := filepath.Join(t.TempDir(), "ca")
	addr := testenv.FreeAddr(t)
	testenv.MustCLI(t, bin, "init", "--dir", dir, "--trust-domain", "example.org", "--listen", addr)
	url := "https://" + addr
	adminCert, roots, _, err := cadir.AdminCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartServerProcess(ctx, t, bin, dir, roots)
	admin, err := apiclient.New(apiclient.Options{ServerURL: url, Roots: roots, Certificate: &adminCert, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseIdleConnections()
	jobs := mintCrashJobs(ctx, t, admin, tokens, workers)

	// Bursts of enrollments, each ended by SIGKILL while requests are in
	// flight, each followed by a restart on the same directory.
	var next atomic.Int64
	received := 0
	for round := 1; ; round++ {
		got, cut := crashBurst(ctx, t, p, url, roots, jobs, &next, workers, killAt)
		received += got
		t.Logf("round %d: killed the server with %d certificates received and %d requests cut off", round, got, cut)
		if cut == 0 {
			t.Fatal("no request was in flight when the server was killed; the test proved nothing")
		}
		admin.CloseIdleConnections()
		p = testenv.StartServerProcess(ctx, t, bin, dir, roots)
		if round == rounds {
			break
		}
	}

	// The store must hold what was handed out.
	stored, err := admin.ListCertificates(ctx, apiclient.ListFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	bySerial := map[string]wire.Certificate{}
	for _, c := range stored {
		if _, dup := bySerial[c.Serial]; dup {
			t.Fatalf("serial %s is stored twice", c.Serial)
		}
		bySerial[c.Serial] = c
	}
	seenSerial := map[string]int{}
	for i := range jobs {
		j := &jobs[i]
		if !j.attempted || j.err != nil {
			continue
		}
		leaf := parseLeaf(t, j.resp.Certificate)
		serial := ca.SerialHex(leaf.SerialNumber)
		if prev, dup := seenSerial[serial]; dup {
			t.Fatalf("serial %s was handed to clients %d and %d", serial, prev, i)
		}
		seenSerial[serial] = i
		sum := sha256.Sum256(leaf.Raw)
		c, ok := bySerial[serial]
		switch {
		case !ok:
			t.Fatalf("client %d received certificate %s but the store does not have it", i, serial)
		case c.Fingerprint != hex.EncodeToString(sum[:]):
			t.Fatalf("certificate %s: stored fingerprint %s, client holds %x", serial, c.Fingerprint, sum)
		case c.Identity != j.identity || j.resp.Serial != serial:
			t.Fatalf("certificate %s: stored for %s, answer said serial %s, want %s", serial, c.Identity, j.resp.Serial, j.identity)
		}
	}

	// Every stored certificate has exactly one issuance audit record, and
	// the chain verifies end to end.
	issued := map[string]int{}
	for after := int64(0); ; {
		recs, err := admin.AuditRecords(ctx, after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Action == audit.ActionIssue {
				issued[r.Subject]++
			}
			after = r.Seq
		}
		if len(recs) < 5000 {
			break
		}
	}
	for serial := range bySerial {
		if issued[serial] != 1 {
			t.Fatalf("certificate %s has %d issuance audit records, want 1", serial, issued[serial])
		}
	}
	if len(issued) != len(bySerial) {
		t.Fatalf("%d issuance audit records for %d stored certificates", len(issued), len(bySerial))
	}
	if got := testenv.MustCLI(t, bin, "audit", "verify", "--dir", dir); !strings.HasPrefix(got, "OK: ") {
		t.Fatalf("audit verify after the crash: %q", got)
	}

	// The restarted server works: an unused token enrolls.
	var spare *crashJob
	for i := range jobs {
		if !jobs[i].attempted {
			spare = &jobs[i]
			break
		}
	}
	if spare == nil {
		t.Fatal("every token was attempted before the kill; mint more")
	}
	enroller, err := apiclient.New(apiclient.Options{ServerURL: url, Roots: roots, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer enroller.CloseIdleConnections()
	if _, err := enroller.Enroll(ctx, spare.token, string(spare.csr)); err != nil {
		t.Fatalf("enrollment after restart: %v", err)
	}
	admin.CloseIdleConnections()
	p.Stop(t)

	// Straight from the database: a token is redeemed if and only if a
	// certificate was recorded for it, and for that certificate.
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "certgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	certs, err := st.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byToken := map[string]store.Certificate{}
	for _, c := range certs {
		if c.TokenID != "" {
			if prev, dup := byToken[c.TokenID]; dup {
				t.Fatalf("token %s issued two certificates: %s and %s", c.TokenID, prev.Serial, c.Serial)
			}
			byToken[c.TokenID] = c
		}
	}
	redeemed := 0
	for i := range jobs {
		j := &jobs[i]
		tok, err := st.GetToken(ctx, j.tokenID)
		if err != nil {
			t.Fatal(err)
		}
		c, hasCert := byToken[j.tokenID]
		switch {
		case tok.RedeemedAt.IsZero() != !hasCert:
			t.Fatalf("token %s: redeemed=%v but certificate recorded=%v", j.tokenID, !tok.RedeemedAt.IsZero(), hasCert)
		case hasCert && tok.Serial != c.Serial:
			t.Fatalf("token %s redeemed for %s, certificate %s recorded for it", j.tokenID, tok.Serial, c.Serial)
		case !j.attempted && j != spare && hasCert:
			t.Fatalf("token %s was never used but has certificate %s", j.tokenID, c.Serial)
		case j.attempted && j.err == nil && !hasCert:
			t.Fatalf("token %s got a certificate but is not redeemed", j.tokenID)
		}
		if hasCert {
			redeemed++
		}
	}
	t.Logf("after %d crashes: %d tokens redeemed (%d received + 1 after the last restart + %d cut off but committed)", rounds,
		redeemed, received, redeemed-received-1)
}

// crashBurst has workers enroll the next jobs against the server p until
// killAt enrollments succeeded and at least half the workers have a request
// in flight, then SIGKILLs p. It returns how many certificates clients
// received and how many requests the kill cut off.
func crashBurst(ctx context.Context, t *testing.T, p *testenv.ServerProcess, url string, roots *x509.CertPool, jobs []crashJob, next *atomic.Int64, workers, killAt int) (received, cut int) {
	t.Helper()
	var (
		okCount, inflight atomic.Int64
		killed            atomic.Bool
		wg                sync.WaitGroup
		mu                sync.Mutex
		mine              []int // indexes of the jobs this burst attempted
	)
	for range workers {
		cl, err := apiclient.New(apiclient.Options{ServerURL: url, Roots: roots, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.CloseIdleConnections()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !killed.Load() {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) {
					return
				}
				mu.Lock()
				mine = append(mine, int(i))
				mu.Unlock()
				j := &jobs[i]
				j.attempted = true
				inflight.Add(1)
				resp, err := cl.Enroll(ctx, j.token, string(j.csr))
				inflight.Add(-1)
				j.resp, j.err = resp, err
				if err == nil {
					okCount.Add(1)
				}
			}
		}()
	}
	for okCount.Load() < int64(killAt) || inflight.Load() < int64(workers/2) {
		if ctx.Err() != nil {
			killed.Store(true)
			t.Fatalf("only %d enrollments succeeded before the deadline; server log:\n%s", okCount.Load(), p.Log())
		}
		time.Sleep(200 * time.Microsecond)
	}
	killed.Store(true)
	p.Kill(t)
	wg.Wait()
	for _, i := range mine {
		var apiErr *apiclient.Error
		switch err := jobs[i].err; {
		case err == nil:
			received++
		case errors.As(err, &apiErr):
			t.Fatalf("enrollment %d refused before the kill: %v", i, err)
		default:
			cut++ // the connection died with the server
		}
	}
	return received, cut
}

// crashJob is one enrollment of the burst: a pre-minted token and a
// pre-made CSR, and what came back.
type crashJob struct {
	token, tokenID, identity string
	csr                      []byte
	attempted                bool
	resp                     wire.EnrollResponse
	err                      error
}

// mintCrashJobs mints n tokens through the admin API (concurrently, so the
// store group-commits them) and makes a key and CSR for each.
func mintCrashJobs(ctx context.Context, t *testing.T, admin *apiclient.Client, n, par int) []crashJob {
	t.Helper()
	jobs := make([]crashJob, n)
	errc := make(chan error, par)
	var next atomic.Int64
	for range par {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					errc <- nil
					return
				}
				id := identity.MustParse(fmt.Sprintf("spiffe://example.org/crash/client-%d", i))
				tok, err := admin.CreateToken(ctx, id.String(), 10*time.Minute)
				if err != nil {
					errc <- err
					return
				}
				key, err := keytype.Generate(keytype.ECDSAP256)
				if err != nil {
					errc <- err
					return
				}
				req, err := csr.Create(key, id)
				if err != nil {
					errc <- err
					return
				}
				jobs[i] = crashJob{token: tok.Token, tokenID: tok.ID, identity: id.String(), csr: req}
			}
		}()
	}
	for range par {
		if err := <-errc; err != nil {
			t.Fatalf("minting tokens: %v", err)
		}
	}
	return jobs
}

func parseLeaf(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	certs, err := pemutil.ParseCertificates([]byte(pemText))
	if err != nil {
		t.Fatalf("certificate in the answer: %v", err)
	}
	return certs[0]
}

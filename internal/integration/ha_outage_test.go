package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/pemutil"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
	"github.com/certgate/certgate/internal/testenv"
)

// issueTry is one attempt to get a certificate: mint a token, enroll.
type issueTry struct {
	replica    int
	start, end time.Time
	tokenID    string
	token, csr string
	identity   string
	resp       string // the certificate PEM handed out, "" if none
	err        error
}

// TestHAPostgresRestartDuringIssuance: two replicas reach PostgreSQL
// through a TCP relay the test cuts for 2 s (every connection closed, new
// ones refused), as a database restart would, while four clients mint
// tokens and enroll without pause. While it is down both replicas answer
// 503 "unavailable" and hand out nothing; every certificate handed out
// before, during or after has its record in the store; both replicas
// issue again by themselves once it is back; a token whose enrollment got
// 503 is still good (or, if the commit landed but its answer was lost,
// recorded as redeemed for a recorded certificate); the audit chain
// verifies.
func TestHAPostgresRestartDuringIssuance(t *testing.T) {
	pg := storetest.PostgresURL(t)
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	relay := testenv.NewLink(t, u.Host)
	u.Host = relay.Addr()
	issueThroughOutage(t, pg, u.String(), func() { relay.SetDown(true) }, func() { relay.SetDown(false) })
}

// issueThroughOutage runs the scenario above: replicas on replicaURL (the
// store as they reach it), the store checked afterwards through pg, and
// the database taken away by down and given back by up, 2 s later.
func issueThroughOutage(t *testing.T, pg, replicaURL string, down, up func()) {
	h := newHASetup(t, replicaURL)
	h.startReplica(h.home)
	h.startReplica("127.0.0.1:0")
	// Each replica's serving certificate is issued (and recorded) at its
	// first handshake: make that happen while the database is up.
	for r := range h.urls {
		if _, err := h.enroll(r, fmt.Sprintf("warmup-%d", r)); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var tries []issueTry
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				it := h.tryIssue(w%len(h.urls), fmt.Sprintf("load-%d-%d", w, i))
				mu.Lock()
				tries = append(tries, it)
				mu.Unlock()
				if it.err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	// cutAt is when the database is gone (a real stop takes a moment).
	down()
	cutAt := time.Now()
	time.Sleep(2 * time.Second)
	restoreAt := time.Now()
	up()
	// Wait for each replica to issue again by itself.
	resumed := make([]time.Duration, len(h.urls))
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		for _, it := range tries {
			if it.err == nil && it.start.After(restoreAt) && resumed[it.replica] == 0 {
				resumed[it.replica] = it.end.Sub(restoreAt)
			}
		}
		mu.Unlock()
		if resumed[0] != 0 && resumed[1] != 0 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("replicas issuing again after the database came back: %v (0: not within 20s)", resumed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("first certificate after the database came back: replica 0 after %v, replica 1 after %v",
		resumed[0].Round(time.Millisecond), resumed[1].Round(time.Millisecond))

	st := openStore(t, pg)
	ctx := context.Background()
	var ok, down503, retried int
	for _, it := range tries {
		during := it.start.After(cutAt.Add(50*time.Millisecond)) && it.end.Before(restoreAt)
		if it.err == nil {
			ok++
			if during {
				t.Errorf("replica %d handed out a certificate while the database was down", it.replica)
			}
			h.wantRecorded(t, st, it.resp)
			continue
		}
		var apiErr *apiclient.Error
		if !errors.As(it.err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Code != "unavailable" {
			t.Errorf("replica %d: %v, want 503 unavailable", it.replica, it.err)
			continue
		}
		if during {
			down503++
		}
		if it.tokenID != "" {
			retried++
			h.retryEnroll(t, st, it)
		}
	}
	t.Logf("%d attempts: %d certificates, %d answered 503 while the database was down, %d enrollments retried after", len(tries), ok, down503, retried)
	if down503 == 0 {
		t.Error("no request met the outage: the test proved nothing")
	}
	if n, _, err := store.VerifyAudit(ctx, st); err != nil {
		t.Errorf("audit chain after the outage (%d records): %v", n, err)
	}
}

// tryIssue mints a token and enrolls on replica r.
func (h *haSetup) tryIssue(r int, name string) issueTry {
	it := issueTry{replica: r, start: time.Now(), identity: "spiffe://example.org/svc/" + name}
	defer func() { it.end = time.Now() }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tok, err := h.admins[r].CreateToken(ctx, it.identity, 10*time.Minute)
	if err != nil {
		it.err = err
		return it
	}
	it.tokenID, it.token = tok.ID, tok.Token
	_, it.csr, err = newCSR(it.identity)
	if err != nil {
		it.err = err
		return it
	}
	resp, err := h.anons[r].Enroll(ctx, it.token, it.csr)
	if err != nil {
		it.err = err
		return it
	}
	it.resp = resp.Certificate
	it.end = time.Now()
	return it
}

// wantRecorded checks that the certificate handed out is in the store,
// byte for byte.
func (h *haSetup) wantRecorded(t *testing.T, st store.Store, certPEM string) {
	t.Helper()
	certs, err := pemutil.ParseCertificates([]byte(certPEM))
	if err != nil {
		t.Fatalf("certificate handed out: %v", err)
	}
	c, err := st.GetCertificate(context.Background(), certs[0].SerialNumber.Text(16))
	if err != nil {
		t.Errorf("certificate %s was handed out without its record: %v", certs[0].SerialNumber.Text(16), err)
		return
	}
	if c.Fingerprint != ca.Fingerprint(certs[0]) {
		t.Errorf("certificate %s: the record is of another certificate", c.Serial)
	}
}

// retryEnroll sends an enrollment that got 503 again: it succeeds, or the
// first attempt did commit (its answer was lost) and the store shows the
// token redeemed for a recorded certificate.
func (h *haSetup) retryEnroll(t *testing.T, st store.Store, it issueTry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := h.anons[it.replica].Enroll(ctx, it.token, it.csr)
	if err == nil {
		h.wantRecorded(t, st, resp.Certificate)
		return
	}
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "token_used" {
		t.Errorf("enrollment retried after the outage: %v", err)
		return
	}
	tok, err := st.GetToken(ctx, it.tokenID)
	if err != nil || tok.Serial == "" {
		t.Errorf("token %s refused as used, but the store says %+v, %v", it.tokenID, tok, err)
		return
	}
	if _, err := st.GetCertificate(ctx, tok.Serial); err != nil {
		t.Errorf("token %s redeemed for %s, which is not recorded: %v", it.tokenID, tok.Serial, err)
	}
}

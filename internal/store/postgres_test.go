package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/store/storetest"
)

// openPostgres opens a store in a fresh schema of the test database, or
// skips the test when PostgreSQL is not reachable.
func openPostgres(t testing.TB) *store.SQL {
	t.Helper()
	return openPostgresURL(t, storetest.PostgresURL(t))
}

func openPostgresURL(t testing.TB, u string) *store.SQL {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresConformance(t *testing.T) {
	storetest.RequirePostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t) })
}

func TestPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there, the connection is refused.
	_, err := store.OpenPostgres(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable")
	if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "store: migrate: store unavailable: ") {
		t.Errorf("OpenPostgres on a closed port: %v, want ErrUnavailable", err)
	}
}

// Two stores on one schema behave like two server replicas: one token is
// redeemed once across both, the audit chain and event positions stay one
// total order.
func TestPostgresReplicas(t *testing.T) {
	u := storetest.PostgresURL(t)
	a, b := openPostgresURL(t, u), openPostgresURL(t, u)
	replicas := []store.Store{a, b}
	ctx := context.Background()

	tok := storetest.NewToken("spiffe://example.org/svc/race", storetest.T0, time.Hour)
	if err := a.CreateToken(ctx, tok, storetest.TokenEntry(tok)); err != nil {
		t.Fatal(err)
	}
	const racers = 20
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			c := storetest.NewCertificate(tok.Identity, storetest.T0)
			is := storetest.NewIssuance(c, tok.ID)
			if i%4 < 2 {
				// Half as an enrollment's: redeemed and checked in one
				// UPDATE ... RETURNING.
				is.TokenSecretHash, is.TokenIdentity = tok.SecretHash, tok.Identity
			}
			errs <- replicas[i%2].RecordIssuance(ctx, is)
		}()
	}
	won := 0
	for range racers {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrTokenUsed):
			t.Errorf("RecordIssuance: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d replicas redeemed the token, want exactly 1", won)
	}

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := replicas[i%2]
			c := storetest.NewCertificate(fmt.Sprintf("spiffe://example.org/svc/%d", i), storetest.T0)
			if err := s.RecordIssuance(ctx, storetest.NewIssuance(c, "")); err != nil {
				t.Error(err)
				return
			}
			req := store.RevokeRequest{Serial: c.Serial, Reason: 1, By: storetest.Admin, Now: storetest.T0.Add(time.Hour)}
			if _, err := replicas[(i+1)%2].Revoke(ctx, req); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	evs, err := b.Events(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.Position != int64(i+1) {
			t.Fatalf("event %d at position %d: want 1..%d without gaps", i, ev.Position, n)
		}
	}
	recs, err := a.AuditRecords(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var v audit.Verifier
	for _, r := range recs {
		if err := v.Add(r); err != nil {
			t.Fatalf("audit chain across replicas: %v", err)
		}
	}
	if want := 2 + 2*n; len(recs) != want {
		t.Errorf("%d audit records, want %d", len(recs), want)
	}
}

// While PostgreSQL cannot be reached, writes and reads fail as unavailable
// and change nothing; when it is back, the store resumes by itself.
func TestPostgresOutage(t *testing.T) {
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{target: u.Host}
	p.start(t, "127.0.0.1:0")
	defer p.stop()
	u.Host = p.addr
	s := openPostgresURL(t, u.String())
	ctx := context.Background()
	issue := func() (store.Certificate, error) {
		c := storetest.NewCertificate("spiffe://example.org/svc/a", storetest.T0)
		return c, s.RecordIssuance(ctx, storetest.NewIssuance(c, ""))
	}
	if _, err := issue(); err != nil {
		t.Fatal(err)
	}

	p.stop()
	lost, err := issue()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RecordIssuance while down: %v, want %v", err, store.ErrUnavailable)
	}
	if _, err := s.GetCertificate(ctx, lost.Serial); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetCertificate while down: %v, want %v", err, store.ErrUnavailable)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping while down: %v, want %v", err, store.ErrUnavailable)
	}

	p.start(t, p.addr)
	if _, err := issue(); err != nil {
		t.Errorf("RecordIssuance after PostgreSQL is back: %v", err)
	}
	if _, err := s.GetCertificate(ctx, lost.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the issuance that failed during the outage: %v, want not found", err)
	}
	recs, err := s.AuditRecords(ctx, 0, 0)
	if err != nil || len(recs) != 2 {
		t.Errorf("audit records = %d, %v; want 2", len(recs), err)
	}
}

// tcpProxy forwards loopback connections to target until stopped, to play
// a database that goes away and comes back.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func (p *tcpProxy) start(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *tcpProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

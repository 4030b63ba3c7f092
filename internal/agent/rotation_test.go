package agent

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/certgatetls"
	"github.com/certgate/certgate/internal/keytype"
	"github.com/certgate/certgate/internal/pemutil"
)

// startProxy serves a proxy for a to upstream on 127.0.0.1 until the test
// ends and returns its base URL.
func startProxy(t *testing.T, a *Agent, upstream string) string {
	t.Helper()
	p, err := NewProxy(a, upstream, a.o.Log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// loadClients send GET requests through the proxy without pause and count
// what comes back.
type loadClients struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	serials    map[string]int
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, base string, n int) *loadClients {
	l := &loadClients{serials: map[string]int{}, stop: make(chan struct{})}
	for range n {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(c, base)
			}
		})
	}
	return l
}

func (l *loadClients) one(c *http.Client, base string) {
	fail := func(msg string) {
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, msg)
		}
		l.mu.Unlock()
	}
	resp, err := c.Get(base + "/v1/echo")
	if err != nil {
		fail(err.Error())
		return
	}
	defer resp.Body.Close()
	var m map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		fail(fmt.Sprintf("status %d, decode %v", resp.StatusCode, err))
		return
	}
	if m["identity"] != "spiffe://example.org/svc/billing" {
		fail("identity " + m["identity"])
		return
	}
	l.ok.Add(1)
	l.mu.Lock()
	l.serials[m["serial"]]++
	l.mu.Unlock()
}

func (l *loadClients) seen(serial string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.serials[serial]
}

// stepTo moves the clock to t in steps, pausing in real time between them so
// the agent, the gateway's expiry sweep and the load all run in between.
func (e *env) stepTo(t time.Time, step time.Duration) {
	for e.clock.Now().Before(t) {
		e.clock.Advance(min(step, t.Sub(e.clock.Now())))
		time.Sleep(3 * time.Millisecond)
	}
}

// TestRenewThreeTimesThroughProxy is the first must-show: with
// one-hour certificates on a fake clock, the agent renews three times in a
// row, each time with a new key of the same type, while four clients send
// requests without pause through the agent's proxy and a real gateway
// (which cuts connections when their certificate expires); not one request
// fails, and the upstream sees every certificate in turn.
func TestRenewThreeTimesThroughProxy(t *testing.T) {
	const lifetime = time.Hour
	e := newEnv(t, lifetime)
	gw := e.startGateway()
	dir := e.enroll("/svc/billing", keytype.ECDSAP384)
	a, _ := e.newAgent(dir, nil)
	base := startProxy(t, a, gw.url)
	run(t, a)
	e.waitSleeping(t)

	load := startLoad(t, base, 4)
	defer func() {
		close(load.stop)
		load.wg.Wait()
	}()
	leaves := []*x509.Certificate{readLeaf(t, dir)}
	waitFor(t, "requests with the first certificate", func() bool { return load.seen(leaves[0].SerialNumber.Text(16)) > 20 })

	step := lifetime / 60
	for i := 1; i <= 3; i++ {
		prev := leaves[len(leaves)-1]
		next := a.Status().NextRenewal
		life := prev.NotAfter.Sub(prev.NotBefore)
		if lo, hi := prev.NotBefore.Add(life*6/10), prev.NotBefore.Add(life*7/10); next.Before(lo) || next.After(hi) {
			t.Fatalf("renewal %d scheduled at %s, outside [%s, %s]", i, next, lo, hi)
		}
		e.stepTo(next, step)
		waitFor(t, fmt.Sprintf("renewal %d", i), func() bool { return a.Status().Renewals == i })
		leaf := readLeaf(t, dir)
		checkKeyMatches(t, dir, leaf)
		for _, old := range leaves {
			if leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
				t.Fatalf("renewal %d reused a key", i)
			}
		}
		if kt, _ := keytype.Of(leaf.PublicKey); kt != keytype.ECDSAP384 {
			t.Fatalf("renewal %d made a %s key, want ecdsa-p384 like the enrolled one", i, kt)
		}
		if got := tlsCert(t, a).Leaf; got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatalf("the agent presents %x, cert.pem holds %x", got.SerialNumber, leaf.SerialNumber)
		}
		leaves = append(leaves, leaf)
		serial := leaf.SerialNumber.Text(16)
		waitFor(t, "requests with the new certificate", func() bool { return load.seen(serial) > 20 })
		// Past the old certificate's expiry: the gateway closes whatever
		// connection still carries it.
		e.stepTo(prev.NotAfter.Add(step), step)
		before := load.ok.Load()
		waitFor(t, "requests after the old certificate expired", func() bool { return load.ok.Load() > before+20 })
	}
	close(load.stop)
	load.wg.Wait()
	load.stop = make(chan struct{}) // for the deferred close

	if f := load.failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed: %q", f, f+load.ok.Load(), load.errs)
	}
	for i, l := range leaves {
		if load.seen(l.SerialNumber.Text(16)) == 0 {
			t.Errorf("certificate %d (%x) never reached the upstream", i, l.SerialNumber)
		}
	}
	t.Logf("%d requests, 0 failed; per certificate: %v", load.ok.Load(), load.serials)
	if st := a.Status(); st.Renewals != 3 || st.LastError != "" || st.State != StateWaiting {
		t.Fatalf("status after three renewals: %+v", st)
	}
}

// checkKeyMatches asserts key.pem (0600) and combined.pem hold the key of
// leaf.
func checkKeyMatches(t *testing.T, dir string, leaf *x509.Certificate) {
	t.Helper()
	for _, name := range []string{certgatetls.KeyFile, CombinedFile} {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		key, err := pemutil.ParsePrivateKey(blocksOf(b, "PRIVATE KEY"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
			t.Fatalf("%s does not hold the key of the certificate in cert.pem", name)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, CombinedFile))
	certs, err := pemutil.ParseCertificates(blocksOf(b, "CERTIFICATE"))
	if err != nil || !certs[0].Equal(leaf) {
		t.Fatalf("combined.pem does not start with the current certificate: %v", err)
	}
}

// blocksOf returns the PEM blocks of type typ in data, re-encoded.
func blocksOf(data []byte, typ string) []byte {
	var out []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type == typ {
			out = append(out, pem.EncodeToMemory(b)...)
		}
	}
}

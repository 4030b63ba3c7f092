package gateway

import (
	"sync"
	"testing"
	"time"
)

// TestHandshakersBounded: handshakes run on handshakers that wait for the
// next connection (serve.go); however many connections came at once, at
// most maxIdleHandshakers wait afterwards, and the next connections are
// served by them.
func TestHandshakersBounded(t *testing.T) {
	e := newEnv(t, quiet())
	leaf := e.ca.Issue(t, withSvc("a"))
	var wg sync.WaitGroup
	errs := make(chan error, 3*maxIdleHandshakers)
	for range 3 * maxIdleHandshakers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client(leaf, false).Get(e.url("/x"))
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.gw.hsIdle.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.gw.hsIdle.Load(); n < 1 || n > maxIdleHandshakers {
		t.Fatalf("%d handshakers waiting, want 1..%d", n, maxIdleHandshakers)
	}
	for range 3 {
		if resp, err := e.client(leaf, false).Get(e.url("/x")); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
		}
	}
}

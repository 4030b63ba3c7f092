package drain

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestCount: one request in flight and one idle keep-alive connection are
// counted as such while a real server shuts down.
func TestCount(t *testing.T) {
	var conns Conns
	inHandler := make(chan struct{})
	release := make(chan struct{})
	hs := &http.Server{ConnState: conns.Track, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-release
		}
		io.WriteString(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	idleClient := &http.Client{Transport: &http.Transport{}}
	resp, err := idleClient.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	slow := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{}}).Get("http://" + ln.Addr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	<-inHandler
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a, i := conns.Count(); a == 1 && i == 1 {
			break
		}
		if time.Now().After(deadline) {
			a, i := conns.Count()
			t.Fatalf("Count = %d active, %d idle; want 1, 1", a, i)
		}
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(context.Background()) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight was not drained: %v", err)
	}
	// Shutdown closes the connections and returns; each connection's own
	// goroutine reports StateClosed as it unwinds, which can come just
	// after. So the count reaches zero within moments, not at the return.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		a, i := conns.Count()
		if a == 0 && i == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after shutdown: %d active, %d idle", a, i)
		}
	}
}

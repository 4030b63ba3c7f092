package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// TestAccessLogLineForEveryRequest (issue 16): under load from 16
// keep-alive connections, a real gateway's access log file holds exactly
// one line per request answered, each with its own request id, once the
// gateway has stopped cleanly; stopped in the middle of a load, it has a
// line for every answered request and at most one more per connection (a
// request it served whose answer the closing connection did not deliver).
func TestAccessLogLineForEveryRequest(t *testing.T) {
	ca := testca.New(t, "example.org")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	leaf := ca.Issue(t, testca.WithID("spiffe://example.org/svc/load"))
	const conns = 16

	start := func(t *testing.T) (*gatewaytest.Gateway, string, *http.Client) {
		dir := t.TempDir()
		gwCert, gwKey := ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw"), testca.WithIPs(net.ParseIP("127.0.0.1"))).WriteFiles(t, dir, "gw")
		logPath := filepath.Join(dir, "access.log")
		cfg := gatewaytest.Config{Bundle: ca.WriteBundle(t, dir), Cert: gwCert, Key: gwKey, AccessLog: logPath,
			Routes: []gatewaytest.Route{{Name: "api", Upstream: up.URL, Allow: []string{"spiffe://example.org/svc/*"}}}}
		// No revocation source: the gateway serves on its bundle alone.
		file := filepath.Join(dir, "gateway.yaml")
		os.WriteFile(file, []byte(strings.Replace(cfg.YAML(), "revocation:\n  mode: feed\n", "", 1)), 0o600)
		gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: dir, File: file})
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLSCertificate()}},
			MaxIdleConnsPerHost: conns}
		t.Cleanup(tr.CloseIdleConnections)
		return gw, logPath, &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	// load sends requests from conns goroutines until stop is closed (or
	// each has sent 3,000) and returns how many were answered 200.
	load := func(gw *gatewaytest.Gateway, c *http.Client, stop <-chan struct{}) int64 {
		var answered atomic.Int64
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 3000 {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := c.Get("https://" + gw.Addr + "/v1/x")
					if err != nil {
						return // the gateway stopped
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						answered.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return answered.Load()
	}
	lines := func(t *testing.T, path string) int {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			var m struct {
				RequestID string `json:"request_id"`
				Status    int    `json:"status"`
			}
			if err := json.Unmarshal(l, &m); err != nil || m.Status != 200 || ids[m.RequestID] {
				t.Fatalf("line %q: %v (status 200 and a new request id expected)", l, err)
			}
			ids[m.RequestID] = true
		}
		return len(ids)
	}

	t.Run("load then stop", func(t *testing.T) {
		gw, path, c := start(t)
		stop := make(chan struct{})
		time.AfterFunc(2*time.Second, func() { close(stop) })
		answered := load(gw, c, stop)
		if err := gw.Stop(); err != nil {
			t.Fatal(err)
		}
		if n := lines(t, path); n != int(answered) || answered == 0 {
			t.Fatalf("%d requests answered, %d access log lines", answered, n)
		}
		t.Logf("%d requests answered, as many lines", answered)
	})
	t.Run("stop under load", func(t *testing.T) {
		gw, path, c := start(t)
		done := make(chan int64)
		go func() { done <- load(gw, c, nil) }()
		time.Sleep(time.Second)
		if err := gw.Stop(); err != nil {
			t.Fatal(err)
		}
		answered := <-done
		if n := lines(t, path); n < int(answered) || n > int(answered)+conns || answered == 0 {
			t.Fatalf("%d requests answered, %d access log lines (at most %d more expected)", answered, n, conns)
		}
	})
}

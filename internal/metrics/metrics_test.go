package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGatewayMetricsServed(t *testing.T) {
	reg := NewRegistry()
	now := time.Unix(1000, 0)
	g := NewGateway(reg, func() time.Time { return now })
	g.Handshake("ok")
	g.Handshake("revoked")
	g.Request("api", 200, "allow", 3*time.Millisecond, time.Millisecond)
	g.Request("", 403, "deny", time.Millisecond, 0)
	// Two requests without a certificate: one with a legacy key, one with
	// nothing; the two above are certificate requests.
	g.Request("legacy", 200, "allow", time.Millisecond, 0)
	g.AuthRequest("legacy-key")
	g.Request("", 401, "deny", time.Millisecond, 0)
	g.AuthRequest("none")
	g.TCPConnection("pg", "allow", time.Second)
	g.ActiveConnections(2)
	g.ActiveConnections(-1)
	g.RevocationSet(7, 42, time.Unix(990, 0))
	g.RevocationStale(true)
	g.ConnectionCut("revoked")
	g.ConnectionCut("revoked")
	g.ConnectionCut("revocation_stale")
	g.Panic("connection")
	g.ObserveFeed(fakeFeed{})
	g.CertificateExpiry(time.Unix(5000, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`certgate_gateway_handshakes_total{result="ok"} 1`,
		`certgate_gateway_handshakes_total{result="revoked"} 1`,
		`certgate_gateway_requests_total{decision="allow",route="api",status="200"} 1`,
		`certgate_gateway_requests_total{decision="deny",route="",status="403"} 1`,
		`certgate_gateway_requests_by_auth_total{auth="certificate"} 2`,
		`certgate_gateway_requests_by_auth_total{auth="legacy-key"} 1`,
		`certgate_gateway_requests_by_auth_total{auth="none"} 1`,
		`certgate_gateway_request_duration_seconds_count{route="api"} 1`,
		`certgate_gateway_upstream_duration_seconds_count{route="api"} 1`,
		`certgate_gateway_tcp_connections_total{decision="allow",route="pg"} 1`,
		`certgate_gateway_active_connections 1`,
		`certgate_gateway_revocation_set_size 7`,
		`certgate_gateway_revocation_set_age_seconds 10`,
		`certgate_gateway_certificate_expiry_timestamp_seconds 5000`,
		`certgate_gateway_revocation_position 42`,
		`certgate_gateway_revocation_stale 1`,
		`certgate_gateway_connections_cut_total{reason="revoked"} 2`,
		`certgate_gateway_connections_cut_total{reason="revocation_stale"} 1`,
		`certgate_gateway_panics_total{where="connection"} 1`,
		`certgate_gateway_feed_connected 1`,
		`certgate_gateway_feed_position 43`,
		`certgate_gateway_feed_lag_seconds 2.5`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if _, err := Serve(ctx, "bad addr", reg); err == nil || !strings.HasPrefix(err.Error(), "metrics: listen tcp: address bad addr") {
		t.Errorf("Serve error = %v", err)
	}
}

type fakeFeed struct{}

func (fakeFeed) Connected() (bool, string) { return true, "https://server" }
func (fakeFeed) Position() int64           { return 43 }
func (fakeFeed) LastContact() time.Time    { return time.Unix(997, 500e6) }

func TestFeedGaugesWithoutFeed(t *testing.T) {
	reg := NewRegistry()
	NewGateway(reg, time.Now)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.Metric) == 1 && mf.Metric[0].Gauge != nil {
			got[mf.GetName()] = mf.Metric[0].Gauge.GetValue()
		}
	}
	if got["certgate_gateway_feed_connected"] != 0 || got["certgate_gateway_feed_lag_seconds"] != -1 || got["certgate_gateway_revocation_stale"] != 0 {
		t.Fatalf("gauges without a feed: %v", got)
	}
}

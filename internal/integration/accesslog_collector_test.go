package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
)

// collectorOutage is how long the collector is down in
// TestAccessLogReachesRsyslog: CERTGATE_COLLECTOR_OUTAGE (a Go duration),
// 30 s by default (the issue's figure; the one long wait of this test).
func collectorOutage(t *testing.T) time.Duration {
	if s := os.Getenv("CERTGATE_COLLECTOR_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CERTGATE_COLLECTOR_OUTAGE: %v", err)
		}
		return d
	}
	return 30 * time.Second
}

// rsyslog is a real rsyslogd (Debian's rsyslog and rsyslog-gnutls)
// listening with TLS on 127.0.0.1, writing each message's MSG as a line.
type rsyslog struct {
	t        *testing.T
	bin, dir string
	conf     string
	port     int
	out      string
	cmd      *exec.Cmd
}

func startRsyslog(t *testing.T, ca *testca.CA) *rsyslog {
	bin := testenv.RequirePeer(t, "rsyslogd")
	dir := t.TempDir()
	srv := ca.Issue(t, testca.Server("spiffe://example.org/collector"), testca.WithIPs(net.ParseIP("127.0.0.1")))
	certFile, keyFile := srv.WriteFiles(t, dir, "collector")
	caFile := ca.WriteBundle(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &rsyslog{t: t, bin: bin, dir: dir, port: port, out: filepath.Join(dir, "received.log"), conf: filepath.Join(dir, "rsyslog.conf")}
	// gtls with x509/certvalid: the gateway must present a certificate
	// the CA signed (rsyslog checks the chain, not a name).
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"
  DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile=%q
  DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" address="127.0.0.1" port="%d")
template(name="msgonly" type="string" string="%%msg%%\n")
action(type="omfile" file=%q template="msgonly" asyncWriting="off" flushOnTXEnd="on")
`, dir, caFile, certFile, keyFile, port, r.out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *rsyslog) start() {
	os.Remove(filepath.Join(r.dir, "rsyslogd.pid")) // a stopped rsyslogd may leave it
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = testenv.LogWriter{T: r.t}, testenv.LogWriter{T: r.t}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd does not listen on %s: %v", r.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends rsyslogd as an init system does (SIGTERM) and waits.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
	r.cmd = nil
}

// lines returns the JSON access log lines rsyslog wrote.
func (r *rsyslog) lines() []map[string]any {
	data, _ := os.ReadFile(r.out)
	// A line rsyslog is still writing (no newline yet) is read next time.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []map[string]any
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			r.t.Fatalf("rsyslog wrote %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func (r *rsyslog) waitLines(n int, d time.Duration) []map[string]any {
	deadline := time.Now().Add(d)
	for {
		ls := r.lines()
		if len(ls) >= n || time.Now().After(deadline) {
			return ls
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// collectorEnv is a real gateway (internal/gatewayd) in front of an
// upstream, its access log going to a file and to rsyslog over TLS.
type collectorEnv struct {
	gw      *gatewaytest.Gateway
	client  *http.Client
	metrics string
	served  int
	mu      sync.Mutex
}

func startCollectorGateway(t *testing.T, ca *testca.CA, rs *rsyslog, syslogExtra string) *collectorEnv {
	dir := t.TempDir()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	gwLeaf := ca.Issue(t, testca.Server("spiffe://example.org/gateway/gw"), testca.WithIPs(net.ParseIP("127.0.0.1")))
	gwCert, gwKey := gwLeaf.WriteFiles(t, dir, "gw")
	bundle := ca.WriteBundle(t, dir)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	metricsAddr := ln.Addr().String()
	ln.Close()
	cfg := gatewaytest.Config{Bundle: bundle, Cert: gwCert, Key: gwKey, AccessLog: filepath.Join(dir, "access.log"),
		Routes: []gatewaytest.Route{{Name: "api", Upstream: up.URL, Allow: []string{"spiffe://example.org/svc/*"}}}}
	yaml := strings.Replace(cfg.YAML(), "access_log:\n", fmt.Sprintf(`access_log:
  syslog:
    address: %s
    tls: {ca: %s, cert: %s, key: %s}
%s`, rs.addr(), bundle, gwCert, gwKey, syslogExtra), 1)
	yaml = strings.Replace(yaml, "revocation:\n  mode: feed\n", "", 1) + "metrics:\n  listen: " + metricsAddr + "\n"
	file := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(file, []byte(yaml), 0o600)
	gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: dir, File: file})
	leaf := ca.Issue(t, testca.WithID("spiffe://example.org/svc/load"))
	tc := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{leaf.TLSCertificate()}}
	return &collectorEnv{gw: gw, metrics: "http://" + metricsAddr + "/metrics",
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}}
}

// load sends n requests from 4 keep-alive connections, at most rate a
// second, and counts those served (200).
func (e *collectorEnv) load(t *testing.T, n, rate int) {
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	jobs := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := e.client.Get("https://" + e.gw.Addr + "/v1/invoices")
				if err != nil {
					t.Errorf("request: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					e.mu.Lock()
					e.served++
					e.mu.Unlock()
				}
			}
		}()
	}
	for range n {
		<-tick.C
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
}

// metric reads one sample of the gateway's metrics (0 if absent).
func (e *collectorEnv) metric(t *testing.T, name string) float64 {
	resp, err := http.Get(e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// TestAccessLogReachesRsyslog: a real rsyslog (TLS, client certificate
// checked) receives exactly one line per request served in a bounded load
// run through a real gateway, although it is stopped for
// collectorOutage() in the middle: the gateway spools meanwhile and
// delivers afterwards; nothing is lost or sent twice.
func TestAccessLogReachesRsyslog(t *testing.T) {
	ca := testca.New(t, "example.org")
	rs := startRsyslog(t, ca)
	e := startCollectorGateway(t, ca, rs, "")
	outage := collectorOutage(t)

	e.load(t, 1000, 500)
	// Octet-counted syslog has no acknowledgement: a line in flight when
	// the collector dies is lost and no sender can know (seen once, 1 of
	// 8,000 lines, at load 20). The load pauses 0.5 s so the collector has
	// read everything when it stops; the outage itself is under load.
	time.Sleep(500 * time.Millisecond)
	rs.stop()
	stopped := time.Now()
	// The gateway keeps serving at 200 requests a second during the
	// outage (bounded: 200 per second of outage).
	e.load(t, int(outage.Seconds()*200), 200)
	time.Sleep(time.Until(stopped.Add(outage)))
	rs.start()
	e.load(t, 1000, 500)

	served := e.served
	got := rs.waitLines(served, 60*time.Second)
	ids := map[string]bool{}
	for _, l := range got {
		ids[l["request_id"].(string)] = true
		if l["schema"] != float64(1) || l["identity"] != "spiffe://example.org/svc/load" || l["status"] != float64(200) {
			t.Fatalf("line %v", l)
		}
	}
	t.Logf("outage %v: %d requests served, %d lines at rsyslog, %d distinct request ids; dropped (metric) %v",
		outage, served, len(got), len(ids), e.metric(t, `certgate_gateway_access_log_dropped_total{output="syslog"}`))
	if len(got) != served || len(ids) != served {
		t.Fatalf("served %d requests, rsyslog has %d lines (%d distinct)", served, len(got), len(ids))
	}
	if d := e.metric(t, `certgate_gateway_access_log_dropped_total{output="syslog"}`); d != 0 {
		t.Fatalf("%v lines dropped", d)
	}
}

// TestAccessLogSpoolLimitDropsCounted: past the spool's limit lines are
// dropped, and counted exactly: lines at rsyslog + dropped = served.
func TestAccessLogSpoolLimitDropsCounted(t *testing.T) {
	ca := testca.New(t, "example.org")
	rs := startRsyslog(t, ca)
	// A 1 MiB spool and 16-line queue hold about 2,000 lines.
	e := startCollectorGateway(t, ca, rs, "    spool_max_mb: 1\n  queue_lines: 16\n")
	e.load(t, 200, 500)
	time.Sleep(500 * time.Millisecond) // see TestAccessLogReachesRsyslog
	rs.stop()
	e.load(t, 4000, 1000)
	rs.start()
	e.load(t, 200, 500)
	served := e.served
	var got []map[string]any
	var dropped float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = rs.lines()
		dropped = e.metric(t, `certgate_gateway_access_log_dropped_total{output="syslog"}`)
		if len(got)+int(dropped) >= served || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // one more report and delivery round: nothing may move
	got, dropped = rs.lines(), e.metric(t, `certgate_gateway_access_log_dropped_total{output="syslog"}`)
	t.Logf("%d served, %d at rsyslog, %v dropped", served, len(got), dropped)
	if dropped == 0 || len(got)+int(dropped) != served {
		t.Fatalf("served %d, rsyslog has %d lines, %v counted dropped", served, len(got), dropped)
	}
}

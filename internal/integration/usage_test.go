package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/apiclient"
	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/roles"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/testenv"
	"github.com/certgate/certgate/internal/testenv/gatewaytest"
	"github.com/certgate/certgate/internal/wire"
)

// usageFlush is the gateways' usage.flush_interval in these tests.
const usageFlush = 300 * time.Millisecond

type usageSetup struct {
	env    *testenv.Env
	gwAddr string
	access *testenv.SyncBuffer
}

// newUsageSetup runs a server and a gateway reporting usage every
// usageFlush, with routes api (every /svc/ identity) and admin (alice
// only) in front of an upstream that answers /ok 200, /missing 404 and
// /fail 500.
func newUsageSetup(t *testing.T, extra string) *usageSetup {
	t.Helper()
	e := testenv.Start(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/missing"):
			http.Error(w, "no such thing", http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/fail"):
			http.Error(w, "broken", http.StatusInternalServerError)
		default:
			fmt.Fprintf(w, "ok %s\n", r.URL.Path)
		}
	}))
	t.Cleanup(up.Close)
	gwDir := t.TempDir()
	e.WriteClientFiles(t, gwDir, e.IssueDirect(t, identity.GatewayPrefix+"gw1", ca.GatewayProfile))
	gw := gatewaytest.MustStart(t, gatewaytest.Options{Dir: gwDir, Config: gatewaytest.Config{
		Bundle: "bundle.pem", Cert: "cert.pem", Key: "key.pem",
		ServerURLs: []string{e.URL}, MaxStaleness: "10m", MaxBackoff: "300ms",
		Routes: []gatewaytest.Route{
			{Name: "admin", PathPrefix: "/admin/", Upstream: up.URL, Allow: []string{"spiffe://example.org/svc/alice"}},
			{Name: "api", PathPrefix: "/", Upstream: up.URL, Allow: []string{"spiffe://example.org/svc/*"}},
		},
		Extra: "usage:\n  flush_interval: " + usageFlush.String() + "\n" + extra,
	}})
	return &usageSetup{env: e, gwAddr: gw.Addr, access: gw.Access}
}

func (u *usageSetup) httpClient(c client) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(u.env.Roots, c)}}
}

// usageKey is what the access log and the store both count by.
type usageKey struct{ identity, route string }

type usageCount struct {
	classes          [6]int64
	bytesIn, byteOut int64
}

// accessCounts sums the access log's entries with an identity.
func accessCounts(t *testing.T, log string) (map[usageKey]usageCount, time.Time) {
	t.Helper()
	out := map[usageKey]usageCount{}
	var last time.Time
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Time     time.Time `json:"time"`
			Identity string    `json:"identity"`
			Route    string    `json:"route"`
			Status   int       `json:"status"`
			BytesIn  int64     `json:"bytes_in"`
			BytesOut int64     `json:"bytes_out"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		if e.Identity == "" {
			continue
		}
		k := usageKey{e.Identity, e.Route}
		c := out[k]
		c.classes[e.Status/100]++
		c.bytesIn += e.BytesIn
		c.byteOut += e.BytesOut
		out[k] = c
		if e.Time.After(last) {
			last = e.Time
		}
	}
	return out, last
}

func storeCounts(t *testing.T, s *store.SQL) map[usageKey]usageCount {
	t.Helper()
	rows, err := s.UsageDays(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[usageKey]usageCount{}
	for _, r := range rows {
		k := usageKey{r.Identity, r.Route}
		c := out[k]
		for i, n := range r.Requests {
			c.classes[i] += n
		}
		c.bytesIn += r.BytesIn
		c.byteOut += r.BytesOut
		out[k] = c
	}
	return out
}

// TestUsageMatchesAccessLog: after a bounded load run of three clients
// (200, 404, 500 answers, refused routes, request bodies), part of it
// while the server is down, the server's usage counts per identity and
// route equal the access log's exactly: every status class and every
// byte, nothing lost while the server was away and nothing counted twice.
// Then the last seen time of one more request reaches the server within
// the flush interval.
func TestUsageMatchesAccessLog(t *testing.T) {
	u := newUsageSetup(t, "")
	e := u.env
	clients := []client{}
	for _, name := range []string{"alice", "bob", "carol"} {
		c := e.IssueDirect(t, "/svc/"+name, ca.ClientProfile)
		clients = append(clients, client{cert: c, serial: c.Leaf.SerialNumber.Text(16), id: "spiffe://example.org/svc/" + name})
	}
	paths := []string{"/ok", "/missing", "/fail", "/admin/ok", "/admin/missing"}
	load := func(rounds int) {
		var wg sync.WaitGroup
		for ci, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := u.httpClient(c)
				defer hc.CloseIdleConnections()
				for i := range rounds {
					p := paths[(i+ci)%len(paths)]
					var resp *http.Response
					var err error
					if i%3 == 0 {
						resp, err = hc.Post("https://"+u.gwAddr+p, "text/plain", bytes.NewReader(bytes.Repeat([]byte("x"), 100+i)))
					} else {
						resp, err = hc.Get("https://" + u.gwAddr + p)
					}
					if err != nil {
						t.Errorf("%s %s: %v", c.id, p, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
	}
	load(40)
	if err := e.StopServer(); err != nil {
		t.Fatal(err)
	}
	load(30)
	time.Sleep(3 * usageFlush) // reports fail and are kept meanwhile
	if err := e.RestartServer(); err != nil {
		t.Fatal(err)
	}
	load(30)

	// The access log is written in the background too: both are read
	// until they agree or the deadline passes.
	var want, got map[usageKey]usageCount
	deadline := time.Now().Add(15 * time.Second)
	for {
		want, _ = accessCounts(t, u.access.String())
		got = storeCounts(t, e.Store)
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(want) != 6 { // each client on api and admin (refused for bob and carol)
		t.Errorf("access log has %d identity/route pairs, want 6: %v", len(want), want)
	}
	var total int64
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s %q: store %+v, access log %+v", k.identity, k.route, got[k], w)
		}
		for _, n := range w.classes {
			total += n
		}
	}
	if len(got) != len(want) {
		t.Errorf("store has %d identity/route pairs, access log %d", len(got), len(want))
	}
	if total != 300 {
		t.Errorf("%d requests counted, want 300", total)
	}
	if bob := want[usageKey{clients[1].id, "admin"}]; bob.classes[4] == 0 {
		t.Errorf("bob's refused admin requests not in the access log: %+v", bob)
	}

	// Last seen: one more request, then poll the store.
	hc := u.httpClient(clients[0])
	resp, err := hc.Get("https://" + u.gwAddr + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	answered := time.Now()
	var lastReq time.Time
	for n := len(u.access.String()); len(u.access.String()) == n; {
		time.Sleep(time.Millisecond)
	}
	_, lastReq = accessCounts(t, u.access.String())
	var lag time.Duration
	for {
		seen, err := e.Store.IdentitiesSeen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) > 0 && seen[0].Identity == clients[0].id && !seen[0].LastSeen.Truncate(time.Microsecond).Before(lastReq) {
			lag = time.Since(answered)
			// The access log writes microseconds.
			if !seen[0].LastSeen.Truncate(time.Microsecond).Equal(lastReq) || seen[0].LastSource != "127.0.0.1" {
				t.Errorf("last seen %v from %q, want %v from 127.0.0.1", seen[0].LastSeen, seen[0].LastSource, lastReq)
			}
			break
		}
		if time.Since(answered) > 10*usageFlush {
			t.Fatalf("last seen not at the server %v after the request", time.Since(answered))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("last seen reached the server %v after the answer (flush interval %v)", lag, usageFlush)
	// The report leaves at most one flush interval after the request;
	// 100 ms for the report's round trip and the store's commit.
	if lag > usageFlush+100*time.Millisecond {
		t.Errorf("last seen lagged %v, more than the flush interval %v", lag, usageFlush)
	}
}

// TestStaleAndExpiringReport: with the fake clock, an identity with a
// valid certificate and no request for 30 days is listed by stale=30d
// (never used, or last used 30 days ago), one used recently is not; an
// identity whose certificate lapses within 7 days with no renewal past the
// point an agent would have renewed is listed by expiring=7d, one that was
// renewed is not.
func TestStaleAndExpiringReport(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	fake := clock.NewFake(t0)
	e := testenv.Start(t, testenv.WithClock(fake))
	long, short := ca.ClientProfile, ca.ClientProfile
	long.Lifetime, short.Lifetime = 90*24*time.Hour, 10*24*time.Hour
	serials := map[string]string{}
	for _, name := range []string{"used", "idle", "oldused"} {
		serials[name] = e.IssueDirect(t, "/svc/"+name, long).Leaf.SerialNumber.Text(16)
	}
	serials["lapsing"] = e.IssueDirect(t, "/svc/lapsing", short).Leaf.SerialNumber.Text(16)
	e.IssueDirect(t, "/svc/renewed", short)
	report := func(name string) {
		t.Helper()
		gw := e.IssueDirect(t, identity.GatewayPrefix+"gw1", ca.GatewayProfile)
		now := fake.Now()
		r := wire.UsageReport{ID: fmt.Sprintf("r-%s-%d", name, now.Unix()), Entries: []wire.UsageEntry{{
			Identity: "spiffe://example.org/svc/" + name, Serial: serials[name], Route: "api", Day: now.UTC().Format(time.DateOnly),
			Requests: [6]int64{0, 0, 1, 0, 0, 0}, LastSeen: now, Source: "127.0.0.1",
		}}}
		if _, err := e.Client(t, &gw).ReportUsage(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// An auditor reads the report (roles are data: the name grants nothing).
	if err := e.Store.GrantRole(context.Background(), roles.Grant{Role: roles.Auditor, Holder: "spiffe://example.org/admin/ops", GrantedBy: "test", GrantedAt: fake.Now()}); err != nil {
		t.Fatal(err)
	}
	adminCert := e.IssueDirect(t, "/admin/ops", long)
	admin := e.Client(t, &adminCert)
	list := func(f apiclient.IdentityFilter) []string {
		t.Helper()
		l, err := admin.ListIdentities(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, id := range l.Identities {
			if name, ok := strings.CutPrefix(id.Identity, "spiffe://example.org/svc/"); ok {
				out = append(out, name)
			}
		}
		return out
	}

	fake.Advance(24 * time.Hour)
	report("oldused")
	fake.Advance(5 * 24 * time.Hour) // day 6: renewed gets its successor
	e.IssueDirect(t, "/svc/renewed", short)
	fake.Advance(60 * time.Hour) // day 8.5: lapsing is past 0.75 of its life
	report("used")
	if got := list(apiclient.IdentityFilter{Expiring: "7d"}); fmt.Sprint(got) != "[lapsing]" {
		t.Errorf("expiring 7d at day 8.5 = %v, want [lapsing]", got)
	}
	if got := list(apiclient.IdentityFilter{Stale: "30d"}); len(got) != 0 {
		t.Errorf("stale 30d at day 8.5 = %v, want none", got)
	}
	fake.AdvanceTo(t0.Add(31*24*time.Hour + 12*time.Hour))
	if got := list(apiclient.IdentityFilter{Stale: "30d"}); fmt.Sprint(got) != "[idle oldused]" {
		t.Errorf("stale 30d at day 31.5 = %v, want [idle oldused]", got)
	}
	all, err := admin.ListIdentities(context.Background(), apiclient.IdentityFilter{Stale: "30d", Identity: "spiffe://example.org/svc/oldused"})
	if err != nil || len(all.Identities) != 1 {
		t.Fatalf("oldused: %+v %v", all, err)
	}
	if got := all.Identities[0]; !got.LastSeen.Equal(t0.Add(24*time.Hour)) || got.LastSource != "127.0.0.1" || got.Requests != 1 || got.Valid != 1 {
		t.Errorf("oldused = %+v; want last seen at day 1 from 127.0.0.1, 1 request, 1 valid certificate", got)
	}
	if _, err := admin.ListIdentities(context.Background(), apiclient.IdentityFilter{Stale: "30x"}); err == nil ||
		err.Error() != `server said 400 bad_request: stale: "30x" is not a positive duration (30d, 12h, 90m)` {
		t.Errorf("stale=30x: %v", err)
	}
}

// TestUsageReportRefusals: POST /v1/usage refuses a caller that is not a
// gateway, malformed, oversized and out-of-domain reports with the exact
// error, and records nothing of a refused report.
func TestUsageReportRefusals(t *testing.T) {
	e := testenv.Start(t)
	gw := e.IssueDirect(t, identity.GatewayPrefix+"gw1", ca.GatewayProfile)
	svc := e.IssueDirect(t, "/svc/a", ca.ClientProfile)
	serial := svc.Leaf.SerialNumber.Text(16)
	now := time.Now().UTC()
	good := wire.UsageEntry{Identity: "spiffe://example.org/svc/a", Serial: serial, Route: "api", Day: now.Format(time.DateOnly),
		Requests: [6]int64{0, 0, 1}, LastSeen: now, Source: "127.0.0.1"}
	post := func(cert *tls.Certificate, body string) (int, string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.Roots, Certificates: []tls.Certificate{*cert}}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Post(e.URL+wire.PathUsage, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var eb wire.ErrorBody
		json.Unmarshal(b, &eb)
		return resp.StatusCode, eb.Error.Message
	}
	report := func(mod func(*wire.UsageReport)) string {
		r := wire.UsageReport{ID: "r1", Entries: []wire.UsageEntry{good}}
		mod(&r)
		b, _ := json.Marshal(r)
		return string(b)
	}
	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		body   string
		status int
		msg    string
	}{
		{"not a gateway", &svc, report(func(*wire.UsageReport) {}), 403, "identity spiffe://example.org/svc/a may not report usage: it holds no role; that needs the role gateway"},
		{"admin", &e.AdminCert, report(func(*wire.UsageReport) {}), 403, "identity spiffe://example.org/admin/alice may not report usage: it holds only admin; that needs the role gateway"},
		{"not JSON", &gw, "{", 400, "invalid JSON: unexpected EOF"},
		{"unknown field", &gw, `{"id":"x","entries":[],"extra":1}`, 400, `invalid JSON: json: unknown field "extra"`},
		{"no id", &gw, report(func(r *wire.UsageReport) { r.ID = "" }), 400, "report id must be 1 to 64 characters"},
		{"long id", &gw, report(func(r *wire.UsageReport) { r.ID = strings.Repeat("a", 65) }), 400, "report id must be 1 to 64 characters"},
		{"other trust domain", &gw, report(func(r *wire.UsageReport) { r.Entries[0].Identity = "spiffe://evil.org/svc/a" }), 400,
			"entry 0: identity: SPIFFE ID outside the trust domain: spiffe://evil.org/svc/a is not in example.org"},
		{"bad serial", &gw, report(func(r *wire.UsageReport) { r.Entries[0].Serial = "XYZ" }), 400, `entry 0: serial "XYZ" is not lowercase hex of at most 64 digits`},
		{"bad source", &gw, report(func(r *wire.UsageReport) { r.Entries[0].Source = "host:1" }), 400, `entry 0: source "host:1" is not an IP address`},
		{"future day", &gw, report(func(r *wire.UsageReport) { r.Entries[0].Day = now.Add(48 * time.Hour).Format(time.DateOnly) }), 400,
			"entry 0: day " + now.Add(48*time.Hour).Format(time.DateOnly) + " is in the future"},
		{"negative", &gw, report(func(r *wire.UsageReport) { r.Entries[0].Requests[2] = -5 }), 400, "entry 0: negative request count"},
		{"too many entries", &gw, report(func(r *wire.UsageReport) {
			r.Entries = make([]wire.UsageEntry, wire.MaxUsageEntries+1)
		}), 400, "report has 20001 entries, more than 20000"},
		{"one source is no sharing", &gw, report(func(r *wire.UsageReport) {
			r.Sharing = []wire.SharingReport{{Identity: good.Identity, Serial: serial, Sources: []string{"127.0.0.1"}, Window: "1m", Time: now}}
		}), 400, "sharing 0: 1 sources, want 2 to 64"},
		{"oversized", &gw, `{"id":"` + strings.Repeat("a", 17<<20) + `"}`, 413, "request body is larger than 16777216 bytes"},
	} {
		status, msg := post(tc.cert, tc.body)
		if status != tc.status || msg != tc.msg {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, msg, tc.status, tc.msg)
		}
	}
	if seen, err := e.Store.IdentitiesSeen(context.Background()); err != nil || len(seen) != 0 {
		t.Errorf("after refusals: %+v %v; want nothing recorded", seen, err)
	}
	// The same report, well formed, is taken once; its retry is a duplicate.
	for i, dup := range []bool{false, true} {
		ack, err := e.Client(t, &gw).ReportUsage(context.Background(), wire.UsageReport{ID: "r1", Entries: []wire.UsageEntry{good}})
		if err != nil || ack.Duplicate != dup || ack.ID != "r1" {
			t.Errorf("report %d: %+v %v, want duplicate %v", i, ack, err, dup)
		}
	}
	if seen, _ := e.Store.IdentitiesSeen(context.Background()); len(seen) != 1 || seen[0].Requests != 1 {
		t.Errorf("after one report sent twice: %+v; want 1 request", seen)
	}
}

// TestSharingSuspected: one certificate used at once from 127.0.0.1 and
// 127.0.0.2 (more hosts than usage.sharing.max_sources 1 within the
// window) is reported by the gateway; the server records a
// cert.sharing_suspected audit record naming both hosts, and the
// inventory flags the identity. Another client used from one host only is
// not flagged.
func TestSharingSuspected(t *testing.T) {
	u := newUsageSetup(t, "  sharing:\n    max_sources: 1\n    window: 1m\n")
	e := u.env
	mk := func(name string) client {
		c := e.IssueDirect(t, "/svc/"+name, ca.ClientProfile)
		return client{cert: c, serial: c.Leaf.SerialNumber.Text(16), id: "spiffe://example.org/svc/" + name}
	}
	shared, alone := mk("shared"), mk("alone")
	from := func(c client, ip string) {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(e.Roots, c), DialContext: d.DialContext}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + u.gwAddr + "/ok")
		if err != nil {
			t.Fatalf("%s from %s: %v", c.id, ip, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s from %s: %s", c.id, ip, resp.Status)
		}
	}
	from(alone, "127.0.0.1")
	from(alone, "127.0.0.1")
	from(shared, "127.0.0.1")
	from(shared, "127.0.0.2")

	var found []audit.Record
	deadline := time.Now().Add(10 * time.Second)
	for len(found) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		recs, err := e.Store.AuditRecords(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Action == audit.ActionSharingSuspected {
				found = append(found, r)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d sharing_suspected audit records, want 1: %+v", len(found), found)
	}
	r := found[0]
	want := `{"identity":"spiffe://example.org/svc/shared","sources":["127.0.0.1","127.0.0.2"],"window":"1m0s"}`
	if r.Subject != shared.serial || r.Actor != "spiffe://example.org/gateway/gw1" || r.Detail != want {
		t.Errorf("audit record %+v; want subject %s by the gateway with %s", r, shared.serial, want)
	}
	list, err := e.Client(t, &e.AdminCert).ListIdentities(context.Background(), apiclient.IdentityFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range list.Identities {
		switch id.Identity {
		case shared.id:
			if id.SharingSuspected.IsZero() {
				t.Errorf("%s not flagged: %+v", id.Identity, id)
			}
		case alone.id:
			if !id.SharingSuspected.IsZero() || id.Requests != 2 {
				t.Errorf("%s: %+v; want 2 requests, not flagged", id.Identity, id)
			}
		}
	}
}

package syslog_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/syslog/syslogtest"
	"github.com/certgate/certgate/internal/testca"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// tlsPair returns a collector's server config (client certificates
// required) and a sender's client config.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	ca := testca.New(t, "example.org")
	srv := ca.Issue(t, testca.Server("spiffe://example.org/collector"), testca.WithIPs(net.ParseIP("127.0.0.1")))
	cli := ca.Issue(t, testca.WithID("spiffe://example.org/gateway/gw"))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	server = tlspolicy.Apply(&tls.Config{Certificates: []tls.Certificate{srv.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	client = tlspolicy.Apply(&tls.Config{Certificates: []tls.Certificate{cli.TLSCertificate()}, RootCAs: pool})
	return server, client
}

func msg(t testing.TB, i int) []byte {
	m := syslog.Message{Facility: syslog.FacilityLocal0, Severity: syslog.SeverityInfo, Time: time.Unix(1700000000, 0),
		Hostname: "gw", AppName: "test", MsgID: "seq", Msg: []byte(strconv.Itoa(i))}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSeq asserts the receiver got exactly 0..n-1, in order, once each.
func checkSeq(t *testing.T, r *syslogtest.Receiver, n int) {
	t.Helper()
	if got := r.WaitCount(n, 10*time.Second); got != n {
		t.Fatalf("received %d messages, want %d", got, n)
	}
	time.Sleep(50 * time.Millisecond)
	ms := r.Messages()
	if len(ms) != n {
		t.Fatalf("received %d messages, want %d", len(ms), n)
	}
	for i, m := range ms {
		if string(m.Msg) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Msg)
		}
	}
	if errs := r.Errors(); len(errs) > 0 {
		t.Fatalf("receiver errors: %v", errs)
	}
}

func closeNow(t *testing.T, c *syslog.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDeliversInOrderOverTLS(t *testing.T) {
	st, ct := tlsPair(t)
	r := syslogtest.Start(t, st)
	c, err := syslog.New(syslog.Config{Address: r.Addr, TLS: ct})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if err := c.Send(msg(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	closeNow(t, c) // Close flushes: every message is written when it returns
	checkSeq(t, r, 5000)
	if s := c.Stats(); s.Sent != 5000 || s.Dropped != 0 || s.Connections != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestOutageSpooledThenDelivered: the collector goes away mid-stream;
// what is sent meanwhile goes to the spool and reaches the collector, in
// order and once, when it is back.
func TestOutageSpooledThenDelivered(t *testing.T) {
	st, ct := tlsPair(t)
	r := syslogtest.Start(t, st)
	c, err := syslog.New(syslog.Config{Address: r.Addr, TLS: ct, QueueLen: 4096, SpoolDir: t.TempDir(), SpoolMaxBytes: 1 << 20,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := c.Send(msg(t, i)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	r.WaitCount(1000, 5*time.Second)
	r.Stop()
	for i := 1000; i < 3000; i++ {
		if err := c.Send(msg(t, i)); err != nil {
			t.Fatalf("send %d during the outage: %v", i, err)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // a request rate, not a burst
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Queued > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := c.Stats(); s.SpoolBytes == 0 || s.Connected || r.Count() != 1000 {
		t.Fatalf("during the outage: stats %+v, received %d", s, r.Count())
	}
	r.Restart()
	checkSeq(t, r, 3000)
	closeNow(t, c)
	if s := c.Stats(); s.Dropped != 0 || s.Sent != 3000 || s.SpoolBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestOverflowDropsCountedExactly: with the collector away and the spool
// full, messages are dropped, and every one is counted: delivered +
// dropped = sent.
func TestOverflowDropsCountedExactly(t *testing.T) {
	r := syslogtest.Start(t, nil)
	r.Stop()
	c, err := syslog.New(syslog.Config{Address: r.Addr, QueueLen: 16, SpoolDir: t.TempDir(), SpoolMaxBytes: 4096,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var refused uint64
	for i := range n {
		if err := c.Send(msg(t, i)); errors.Is(err, syslog.ErrDropped) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	s := c.Stats()
	if s.Dropped != refused || refused == 0 || s.SpoolBytes > 4096 {
		t.Fatalf("stats %+v, %d refused", s, refused)
	}
	r.Restart()
	want := n - int(refused)
	if got := r.WaitCount(want, 10*time.Second); got != want {
		t.Fatalf("received %d, want %d", got, want)
	}
	closeNow(t, c)
	time.Sleep(50 * time.Millisecond)
	if got := r.Count(); got != want {
		t.Fatalf("received %d after close, want %d", got, want)
	}
	if s := c.Stats(); s.Sent != uint64(want) || s.Dropped != refused {
		t.Fatalf("stats %+v", s)
	}
}

// TestSpoolSurvivesRestart: Close with the collector away keeps the queue
// in the spool; the next Client on that spool delivers it.
func TestSpoolSurvivesRestart(t *testing.T) {
	r := syslogtest.Start(t, nil)
	r.Stop()
	dir := t.TempDir()
	cfg := syslog.Config{Address: r.Addr, SpoolDir: dir, SpoolMaxBytes: 1 << 20, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	c, err := syslog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		c.Send(msg(t, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close with the collector away: %v", err)
	}
	if err := c.Send(msg(t, 0)); !errors.Is(err, syslog.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	r.Restart()
	c2, err := syslog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkSeq(t, r, 300)
	closeNow(t, c2)
}

// TestSpoolHeadKeptAcrossRestart: a spool half sent when the process
// stopped resumes where it was, sending nothing twice.
func TestSpoolHeadKeptAcrossRestart(t *testing.T) {
	r := syslogtest.Start(t, nil)
	r.Stop()
	dir := t.TempDir()
	cfg := syslog.Config{Address: r.Addr, SpoolDir: dir, SpoolMaxBytes: 1 << 20, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	c, _ := syslog.New(cfg)
	for i := range 3000 {
		c.Send(msg(t, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A receiver that stops after the first connection's worth, then the
	// next client finishes the spool.
	r.Restart()
	c2, _ := syslog.New(cfg)
	r.WaitCount(100, 5*time.Second)
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	r.Stop()
	c2.Close(ctx2)
	if _, err := os.Stat(filepath.Join(dir, "head")); err != nil && r.Count() < 3000 {
		t.Fatalf("no head record after a partial send of %d: %v", r.Count(), err)
	}
	r.Restart()
	c3, _ := syslog.New(cfg)
	checkSeq(t, r, 3000)
	closeNow(t, c3)
}

func TestBlockPolicyWaits(t *testing.T) {
	r := syslogtest.Start(t, nil)
	r.Stop()
	c, _ := syslog.New(syslog.Config{Address: r.Addr, QueueLen: 4, Overflow: syslog.OverflowBlock, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	for i := range 4 {
		if err := c.Send(msg(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	sent := make(chan error)
	go func() { sent <- c.Send(msg(t, 4)) }()
	select {
	case err := <-sent:
		t.Fatalf("fifth send returned %v with a full queue", err)
	case <-time.After(200 * time.Millisecond):
	}
	r.Restart()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	checkSeq(t, r, 5)
	closeNow(t, c)
	if s := c.Stats(); s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDamagedSpoolSkipped(t *testing.T) {
	r := syslogtest.Start(t, nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "00000000000000000001.spool"), fmt.Appendf(nil, "%d %sjunk!", len(msg(t, 0)), msg(t, 0)), 0o600)
	os.WriteFile(filepath.Join(dir, "00000000000000000002.spool"), fmt.Appendf(nil, "%d %s", len(msg(t, 1)), msg(t, 1)), 0o600)
	c, err := syslog.New(syslog.Config{Address: r.Addr, SpoolDir: dir, SpoolMaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	checkSeq(t, r, 2)
	closeNow(t, c)
}

func TestConfigErrors(t *testing.T) {
	for cfg, want := range map[*syslog.Config]string{
		{Address: "nohost"}:                             "syslog: address: address nohost: missing port in address",
		{Address: "127.0.0.1:1", SpoolDir: t.TempDir()}: "syslog: a spool directory needs a positive size limit",
	} {
		if _, err := syslog.New(*cfg); err == nil || err.Error() != want {
			t.Errorf("New(%+v) = %v, want %s", cfg, err, want)
		}
	}
	c, _ := syslog.New(syslog.Config{Address: "127.0.0.1:1", MaxMessage: 10})
	if err := c.Send(make([]byte, 11)); !errors.Is(err, syslog.ErrTooLarge) || c.Stats().Dropped != 1 {
		t.Fatalf("oversized: %v, %+v", err, c.Stats())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	c.Close(ctx)
}

func TestSendAllocs(t *testing.T) {
	r := syslogtest.Start(t, nil)
	c, _ := syslog.New(syslog.Config{Address: r.Addr})
	defer closeNow(t, c)
	m := msg(t, 1)
	for range 20000 { // fill every slot once
		c.Send(m)
	}
	if n := testing.AllocsPerRun(1000, func() { c.Send(m) }); n != 0 {
		t.Fatalf("Send allocates %v times", n)
	}
}

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The idle-connection benchmark (`certgate bench idle`, issue 16): what a
// server holds for each mTLS keep-alive connection waiting for its next
// request. It opens Conns connections (a full handshake each), sends one
// request on each and reads the whole answer, holds them all open, and
// reads the server's resident memory (VmRSS in /proc/PID/status) against
// what it was before the connections; with MetricsURL (a Prometheus
// endpoint with the Go collector: the gateway's metrics listener, or
// `certgate bench baseline --metrics`) also the Go runtime's view of it:
// heap and stacks in use and goroutines. The server should be a fresh
// process: a Go server keeps the heap of earlier connections and would
// reuse it, hiding the cost.

// IdleOptions configures an idle-connection run. Errors about a field name
// the command-line flag that sets it.
type IdleOptions struct {
	Addr       string // host:port of the server (--addr)
	Name       string // the server's name in the report (default: Addr)
	ServerPID  int    // the server's process on this machine (Linux): required
	MetricsURL string // http://host:port/metrics with go_* metrics, or ""
	Cert, Key  string // client certificate chain and key PEM files
	// CACert holds the roots that verify the server once; empty: the
	// server is NOT verified (InsecureSkipVerify).
	CACert      string
	ServerName  string
	Curve       string // key-exchange group offered: P256, X25519 or X25519MLKEM768
	Path        string // path of the one request on each connection
	Conns       int    // connections to open and hold
	Concurrency int    // handshakes in flight while opening
	// Settle is how long the connections are held after the last answer
	// before memory is read.
	Settle time.Duration
	// Timeout bounds the whole run: opening, holding and reading.
	Timeout time.Duration
	Out     io.Writer // the report; nil discards it
}

// IdleResult is what an idle-connection run measured.
type IdleResult struct {
	Name                string
	Conns               int // connections open and answered when memory was read
	Elapsed             time.Duration
	RSSBefore, RSSAfter int64 // bytes
	// RSSPeak is the highest resident memory of the server process so far
	// (VmHWM) when memory was read: the peak while the connections were
	// opened, unless the process was larger before them.
	RSSPeak             int64
	FDsBefore, FDsAfter int
	// Runtime holds the go_* gauges before and after, when MetricsURL
	// was given.
	RuntimeBefore, RuntimeAfter map[string]float64
}

// PerConn is the server's resident memory per idle connection, in bytes.
func (r *IdleResult) PerConn() float64 {
	if r.Conns == 0 {
		return 0
	}
	return float64(r.RSSAfter-r.RSSBefore) / float64(r.Conns)
}

// PeakPerConn is the server's peak resident memory above what it was
// before the connections, per connection, in bytes (0 when not read).
func (r *IdleResult) PeakPerConn() float64 {
	if r.Conns == 0 || r.RSSPeak == 0 {
		return 0
	}
	return float64(r.RSSPeak-r.RSSBefore) / float64(r.Conns)
}

// RuntimePerConn is the growth of one runtime gauge per connection, and
// whether it was measured.
func (r *IdleResult) RuntimePerConn(name string) (float64, bool) {
	a, okA := r.RuntimeAfter[name]
	b, okB := r.RuntimeBefore[name]
	if !okA || !okB || r.Conns == 0 {
		return 0, false
	}
	return (a - b) / float64(r.Conns), true
}

// idleGauges are the Go collector's gauges the report gives, with the
// runtime/metrics names they come from.
var idleGauges = []struct{ name, label string }{
	{"go_memstats_heap_inuse_bytes", "heap in use (/memory/classes/heap/objects + unused)"},
	{"go_memstats_heap_alloc_bytes", "heap objects (/memory/classes/heap/objects, live and not yet swept)"},
	{"go_memstats_stack_inuse_bytes", "stacks (/memory/classes/heap/stacks)"},
	{"go_memstats_sys_bytes", "from the OS (/memory/classes/total)"},
	{"go_goroutines", "goroutines (/sched/goroutines)"},
}

func (o *IdleOptions) check() error {
	switch {
	case o.Addr == "":
		return errors.New("--addr: no address given")
	case o.Cert == "" || o.Key == "":
		return errors.New("--cert, --key: a client certificate and key are required")
	case o.ServerPID == 0:
		return errors.New("--server-pid: the server's process ID is required (its memory is what is measured)")
	case o.Conns < 1:
		return fmt.Errorf("--conns: must be at least 1, got %d", o.Conns)
	case o.Concurrency < 1:
		return fmt.Errorf("--concurrency: must be at least 1, got %d", o.Concurrency)
	case o.Settle < 0:
		return fmt.Errorf("--settle: must not be negative, got %s", o.Settle)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout: must be positive, got %s", o.Timeout)
	}
	if _, ok := tlsCurves[o.Curve]; !ok {
		return fmt.Errorf("--curve: unknown group %q (P256, X25519, X25519MLKEM768)", o.Curve)
	}
	if _, err := ProcessRSS(o.ServerPID); err != nil {
		return fmt.Errorf("--server-pid: %w", err)
	}
	if o.MetricsURL != "" && !strings.HasPrefix(o.MetricsURL, "http://") {
		return fmt.Errorf("--metrics: %q is not an http:// URL", o.MetricsURL)
	}
	return nil
}

// RunIdle opens o.Conns connections to the server, one request each,
// holds them for o.Settle and reads the server's memory; then closes them
// (with a reset: no TIME_WAIT left to exhaust the ports of the next run)
// and writes the report to o.Out. It fails if any connection fails: the
// figure is only meaningful for all of them.
func RunIdle(ctx context.Context, o IdleOptions) (*IdleResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	w := o.Out
	if w == nil {
		w = io.Discard
	}
	if o.Name == "" {
		o.Name = o.Addr
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tc, err := idleClientConfig(o)
	if err != nil {
		return nil, err
	}
	req := []byte("GET " + o.Path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: tc}

	// A few connections first, closed again: what a server sets up on
	// its first connection (lazy tables, pools, the upstream connection)
	// is not per connection.
	warm, err := openIdle(ctx, d, o.Addr, req, 8, 8)
	closeIdle(warm)
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	sleepCtx(ctx, time.Second)
	res := &IdleResult{Name: o.Name}
	if res.RSSBefore, err = ProcessRSS(o.ServerPID); err != nil {
		return nil, err
	}
	res.FDsBefore = processFDs(o.ServerPID)
	if o.MetricsURL != "" {
		if res.RuntimeBefore, err = readGoGauges(ctx, o.MetricsURL); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	conns, err := openIdle(ctx, d, o.Addr, req, o.Conns, o.Concurrency)
	defer closeIdle(conns)
	if err != nil {
		return nil, fmt.Errorf("%d of %d connections open: %w", len(conns), o.Conns, err)
	}
	res.Elapsed = time.Since(start)
	res.Conns = len(conns)
	if !sleepCtx(ctx, o.Settle) {
		return nil, fmt.Errorf("--timeout: %w", ctx.Err())
	}
	if res.RSSAfter, err = ProcessRSS(o.ServerPID); err != nil {
		return nil, err
	}
	if res.RSSPeak, err = processStatusKB(o.ServerPID, "VmHWM"); err != nil {
		return nil, err
	}
	res.FDsAfter = processFDs(o.ServerPID)
	if o.MetricsURL != "" {
		if res.RuntimeAfter, err = readGoGauges(ctx, o.MetricsURL); err != nil {
			return nil, err
		}
	}
	res.print(w)
	// A server that closed some connections (an idle timeout, a
	// connection limit) holds less than what is divided.
	if res.FDsBefore >= 0 && res.FDsAfter >= 0 && res.FDsAfter-res.FDsBefore < res.Conns {
		return res, fmt.Errorf("the server holds %d more open files for %d connections: it closed some while they were held",
			res.FDsAfter-res.FDsBefore, res.Conns)
	}
	return res, nil
}

func idleClientConfig(o IdleOptions) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("--cert/--key: %w", err)
	}
	tc := &tls.Config{
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{"http/1.1"},
		CurvePreferences: []tls.CurveID{tlsCurves[o.Curve]},
		MinVersion:       tls.VersionTLS12,
		// Verified by pinVerifier when there are roots; see CACert.
		InsecureSkipVerify: true,
	}
	if o.CACert != "" {
		roots, err := loadPool(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		tc.VerifyConnection = (&pinVerifier{roots: roots, name: o.ServerName}).verify
	}
	return tc, nil
}

// openIdle opens n connections with conc handshakes in flight, sends req
// on each and reads its whole answer (any status below 500). It stops at
// the first failure and returns the connections opened so far.
func openIdle(ctx context.Context, d *tls.Dialer, addr string, req []byte, n, conc int) ([]net.Conn, error) {
	var mu sync.Mutex
	conns := make([]net.Conn, 0, n)
	var firstErr error
	var next atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				c, err := openOne(ctx, d, addr, req)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					cancel()
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && len(conns) < n {
		firstErr = ctx.Err()
		if firstErr == nil {
			firstErr = context.Canceled
		}
	}
	return conns, firstErr
}

func openOne(ctx context.Context, d *tls.Dialer, addr string, req []byte) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := exchange(c, newAnswers(c), req); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// closeIdle closes conns with a reset (SO_LINGER 0): 20,000 connections
// closed normally would hold as many ports in TIME_WAIT.
func closeIdle(conns []net.Conn) {
	for _, c := range conns {
		if tc, ok := c.(*tls.Conn); ok {
			if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
				tcp.SetLinger(0)
			}
		}
		c.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ProcessRSS returns the resident memory of process pid (VmRSS in
// /proc/PID/status), in bytes. Linux only.
func ProcessRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: memory of process %d: %w", pid, err)
	}
	return parseRSS(pid, string(data))
}

// processStatusKB returns the field (VmRSS, VmHWM) of /proc/PID/status in
// bytes. Linux only.
func processStatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: memory of process %d: %w", pid, err)
	}
	return parseStatusKB(pid, string(data), field)
}

func parseRSS(pid int, status string) (int64, error) { return parseStatusKB(pid, status, "VmRSS") }

func parseStatusKB(pid int, status, field string) (int64, error) {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n >= 0 {
				return n << 10, nil
			}
		}
		return 0, fmt.Errorf("bench: memory of process %d: %s line %q does not parse", pid, field, strings.TrimSpace(line))
	}
	return 0, fmt.Errorf("bench: memory of process %d: no %s in /proc/%d/status", pid, field, pid)
}

// processFDs counts the open files of pid, -1 if they cannot be read.
func processFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// readGoGauges reads the unlabelled go_* samples of a Prometheus text
// endpoint.
func readGoGauges(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--metrics: %s answered %s", url, resp.Status)
	}
	m, err := parseGoGauges(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %s: %w", url, err)
	}
	if _, ok := m["go_memstats_heap_inuse_bytes"]; !ok {
		return nil, fmt.Errorf("--metrics: %s has no go_memstats_heap_inuse_bytes (not a Go collector)", url)
	}
	return m, nil
}

func parseGoGauges(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "go_") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.ContainsRune(name, '{') {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", line, err)
		}
		m[name] = v
	}
	return m, sc.Err()
}

func (r *IdleResult) print(w io.Writer) {
	fmt.Fprintf(w, "%s: %d connections open and answered in %s (client GOMAXPROCS %d); server RSS %.1f MiB before, %.1f MiB after; open files %+d\n",
		r.Name, r.Conns, r.Elapsed.Round(time.Millisecond), runtime.GOMAXPROCS(0),
		float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.FDsAfter-r.FDsBefore)
	fmt.Fprintf(w, "%s: %.1f KiB RSS per idle connection; peak while opening %.1f KiB per connection (VmHWM %.1f MiB)\n",
		r.Name, r.PerConn()/1024, r.PeakPerConn()/1024, float64(r.RSSPeak)/(1<<20))
	for _, g := range idleGauges {
		v, ok := r.RuntimePerConn(g.name)
		if !ok {
			continue
		}
		if strings.HasSuffix(g.name, "_bytes") {
			fmt.Fprintf(w, "  %-32s %+8.1f KiB per connection  %s\n", g.name, v/1024, g.label)
		} else {
			fmt.Fprintf(w, "  %-32s %+8.2f per connection      %s\n", g.name, v, g.label)
		}
	}
	// One line for scripts: name, connections, bytes per connection, and
	// the runtime gauges' growth per connection.
	fmt.Fprintf(w, "idle-result name=%s conns=%d rss_kib=%.2f peak_kib=%.2f", r.Name, r.Conns, r.PerConn()/1024, r.PeakPerConn()/1024)
	for _, g := range idleGauges {
		if v, ok := r.RuntimePerConn(g.name); ok {
			if strings.HasSuffix(g.name, "_bytes") {
				v /= 1024
			}
			fmt.Fprintf(w, " %s=%.2f", strings.TrimPrefix(g.name, "go_"), v)
		}
	}
	fmt.Fprintln(w)
}

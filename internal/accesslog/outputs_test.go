package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/syslog/syslogtest"
)

// syncBuffer is a bytes.Buffer safe to read while the output writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestOutputsAtOnce: one Log reaches the file, standard output and the
// collector; Close flushes all three.
func TestOutputsAtOnce(t *testing.T) {
	r := syslogtest.Start(t, nil)
	dir := t.TempDir()
	var out syncBuffer
	l, err := Open(Options{
		File:   &FileOptions{Path: filepath.Join(dir, "access.log")},
		Stdout: &out,
		Syslog: &SyslogOptions{Config: syslog.Config{Address: r.Addr}, Hostname: "gw 1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{Time: t0, Kind: KindHTTP, Path: "/v1/invoices", Status: 200, RequestID: RequestID{1}}
	for range 1000 {
		l.Log(e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := e.AppendJSON(nil)
	data, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	if !bytes.Equal(data, bytes.Repeat(want, 1000)) {
		t.Fatalf("file has %d bytes, %d lines", len(data), bytes.Count(data, []byte("\n")))
	}
	if !bytes.Equal(out.Bytes(), bytes.Repeat(want, 1000)) {
		t.Fatalf("stdout has %d lines", bytes.Count(out.Bytes(), []byte("\n")))
	}
	if n := r.WaitCount(1000, 5*time.Second); n != 1000 {
		t.Fatalf("collector got %d", n)
	}
	m := r.Messages()[0]
	if m.Hostname != "gw_1" || m.AppName != "certgate" || m.MsgID != "access" || m.Severity != syslog.SeverityInfo ||
		m.Facility != syslog.FacilityLocal0 || !m.Time.Equal(t0) || string(m.Msg) != string(want[:len(want)-1]) {
		t.Fatalf("message %+v", m)
	}
	var v map[string]any
	if err := json.Unmarshal(m.Msg, &v); err != nil || v["schema"] != float64(Schema) {
		t.Fatalf("syslog body %s: %v", m.Msg, err)
	}
}

// blockedWriter blocks every write until released.
type blockedWriter struct {
	release chan struct{}
	lines   int
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	b.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

// TestDropsCountedAndReported: an output that cannot keep up drops lines
// without slowing Log; every drop is counted (written + dropped = logged),
// reported to the metric and in the log at most once a second.
func TestDropsCountedAndReported(t *testing.T) {
	bw := &blockedWriter{release: make(chan struct{})}
	var mu sync.Mutex
	metric := map[string]uint64{}
	calls := 0
	var logBuf syncBuffer
	l, err := Open(Options{Stdout: bw, QueueLen: 100, Log: newTestLogger(&logBuf),
		Dropped: func(out string, n uint64) { mu.Lock(); metric[out] += n; calls++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{Time: t0, Kind: KindHTTP, Path: "/x"}
	start := time.Now()
	for range 5000 {
		l.Log(e)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("5000 Log calls with a stuck output took %v", d)
	}
	time.Sleep(2500 * time.Millisecond) // two reports at most
	close(bw.release)
	l.Close()
	dropped := l.Dropped()[OutputStdout]
	// The writer holds one batch it took before blocking, the queue 100.
	if dropped+uint64(bw.lines) != 5000 || dropped < 4000 {
		t.Fatalf("dropped %d, written %d, logged 5000", dropped, bw.lines)
	}
	mu.Lock()
	defer mu.Unlock()
	if metric[OutputStdout] != dropped {
		t.Fatalf("metric %d, dropped %d", metric[OutputStdout], dropped)
	}
	if calls > 4 {
		t.Fatalf("%d reports in about 2.5 s", calls)
	}
	sc := bufio.NewScanner(bytes.NewReader(logBuf.Bytes()))
	n := 0
	for sc.Scan() {
		n++
	}
	if n != calls || n == 0 {
		t.Fatalf("%d log lines for %d reports: %s", n, calls, logBuf.Bytes())
	}
}

func newTestLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

package accesslog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/clock"
	"github.com/certgate/certgate/internal/syslog"
)

// FlushInterval bounds how long a line may sit in a buffer.
const FlushInterval = 100 * time.Millisecond

// linger is how long an output lets lines gather after the first one
// arrives (lines reach the file's buffer at most this much later).
const linger = 2 * time.Millisecond

// bufferSize is the write buffer; a full buffer is written at once.
const bufferSize = 64 << 10

// DefaultQueueLen is each output's queue, in lines: about two seconds of
// 10,000 requests a second, so a slow disk or a rotation with compression
// does not drop lines.
const DefaultQueueLen = 32768

// ShutdownTimeout bounds how long Close waits for the syslog collector.
const ShutdownTimeout = 10 * time.Second

// Output names, as in the dropped-lines metric and log.
const (
	OutputFile   = "file"
	OutputStdout = "stdout"
	OutputSyslog = "syslog"
)

// Options say where the access log goes. Several outputs at once are
// normal: a file, a collector and standard output.
type Options struct {
	File   *FileOptions   // nil: no file
	Stdout io.Writer      // nil: none
	Syslog *SyslogOptions // nil: none
	// QueueLen is each output's queue (DefaultQueueLen).
	QueueLen int
	// Block makes Log wait for room in a full queue instead of dropping
	// the line (on_overflow: block). The default drops and counts.
	Block bool
	Clock clock.Clock
	Log   *slog.Logger // where dropped lines are reported
	// Dropped is told how many lines an output dropped (at most once a
	// second, and at Close): the metric.
	Dropped func(output string, n uint64)
}

// SyslogOptions is the syslog output: the connection (internal/syslog)
// and the message header.
type SyslogOptions struct {
	syslog.Config
	Hostname string // default: os.Hostname
	AppName  string // default "certgate"
}

// Logger writes entries to its outputs. It is safe for concurrent use.
type Logger struct {
	pool    sync.Pool // *[]byte
	outs    []*output
	syslog  *syslogOut
	log     *slog.Logger
	dropped func(string, uint64)
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	err     error
	closed  bool
}

// output is one queued destination written by its own goroutine.
type output struct {
	name     string
	q        *queue
	drops    atomic.Uint64
	reported uint64
	write    func([]byte) error
	flush    func() error
	tick     func() error
	close    func() error
	done     chan struct{}
	flushReq chan chan struct{}
}

// New returns a Logger writing to w only (tests, standard output).
func New(w io.Writer) *Logger {
	l, _ := Open(Options{Stdout: w})
	return l
}

// Open starts the outputs o names.
func Open(o Options) (*Logger, error) {
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	l := &Logger{log: o.Log, dropped: o.Dropped, stop: make(chan struct{}), done: make(chan struct{})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.pool.New = func() any { b := make([]byte, 0, 1024); return &b }
	if o.File != nil {
		fs, err := openFileSink(*o.File, o.Clock)
		if err != nil {
			return nil, err
		}
		l.outs = append(l.outs, &output{name: OutputFile, write: fs.write, flush: fs.flush, tick: fs.tick, close: fs.close})
	}
	if o.Stdout != nil {
		bw := newBufWriter(o.Stdout)
		l.outs = append(l.outs, &output{name: OutputStdout, write: bw.write, flush: bw.flush, close: bw.flush})
	}
	if o.Syslog != nil {
		so, err := newSyslogOut(o.Syslog, o.Block)
		if err != nil {
			for _, out := range l.outs {
				out.close()
			}
			return nil, err
		}
		l.syslog = so
	}
	for _, out := range l.outs {
		out.q = newQueue(o.QueueLen, o.Block)
		out.done = make(chan struct{})
		out.flushReq = make(chan chan struct{})
		go l.run(out)
	}
	go l.report()
	return l, nil
}

// Log queues one entry on every output. Under the default policy it never
// waits: a full queue drops the line and counts it.
func (l *Logger) Log(e *Entry) {
	bp := l.pool.Get().(*[]byte)
	line := e.AppendJSON((*bp)[:0])
	for _, out := range l.outs {
		if !out.q.put(line) {
			out.drops.Add(1)
		}
	}
	if l.syslog != nil {
		line = l.syslog.send(e.Time, line)
	}
	*bp = line
	l.pool.Put(bp)
}

// run is an output's goroutine: write what is queued, flush at least every
// FlushInterval, drain on close.
func (l *Logger) run(out *output) {
	defer close(out.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	buf := make([]byte, 0, bufferSize)
	drain := func() {
		for {
			// The queue keeps buf and hands over what was queued: every
			// line goes out in one write.
			buf = out.q.take(buf)
			if len(buf) == 0 {
				return
			}
			if err := out.write(buf); err != nil {
				l.setErr(err)
			}
		}
	}
	for {
		select {
		case <-out.q.wake:
			// Let lines gather: one wake-up per batch, not per line.
			time.Sleep(linger)
			drain()
		case <-t.C:
			drain()
			if out.tick != nil {
				if err := out.tick(); err != nil {
					l.setErr(err)
				}
			}
			if err := out.flush(); err != nil {
				l.setErr(err)
			}
		case ack := <-out.flushReq:
			drain()
			if err := out.flush(); err != nil {
				l.setErr(err)
			}
			close(ack)
		case <-l.stop:
			drain()
			if err := out.close(); err != nil {
				l.setErr(err)
			}
			return
		}
	}
}

// report tells the log and the metric about dropped lines, at most once a
// second.
func (l *Logger) report() {
	defer close(l.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.reportDrops()
		case <-l.stop:
			return
		}
	}
}

func (l *Logger) reportDrops() {
	for _, out := range l.outs {
		n := out.drops.Load()
		if d := n - out.reported; d > 0 {
			out.reported = n
			l.dropReport(out.name, d, n)
		}
	}
	if l.syslog != nil {
		n := l.syslog.client.Stats().Dropped
		if d := n - l.syslog.reported; d > 0 {
			l.syslog.reported = n
			l.dropReport(OutputSyslog, d, n)
		}
	}
}

func (l *Logger) dropReport(name string, d, total uint64) {
	l.log.Warn("access log lines dropped: the output cannot keep up (access_log.on_overflow is drop)", "output", name, "dropped", d, "dropped_total", total)
	if l.dropped != nil {
		l.dropped(name, d)
	}
}

// Dropped returns how many lines each output dropped so far.
func (l *Logger) Dropped() map[string]uint64 {
	m := map[string]uint64{}
	for _, out := range l.outs {
		m[out.name] = out.drops.Load()
	}
	if l.syslog != nil {
		m[OutputSyslog] = l.syslog.client.Stats().Dropped
	}
	return m
}

func (l *Logger) setErr(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// Flush writes every queued line out (not to the collector: that is
// Close's).
func (l *Logger) Flush() error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if !closed {
		for _, out := range l.outs {
			ack := make(chan struct{})
			select {
			case out.flushReq <- ack:
				<-ack
			case <-out.done:
			}
		}
	}
	return l.Err()
}

// Err returns the first write error, if any.
func (l *Logger) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close writes out every queued line, delivers (or spools) the syslog
// queue within ShutdownTimeout, and closes the file. The Logger must not be
// used after.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.Err()
	}
	l.closed = true
	l.mu.Unlock()
	for _, out := range l.outs {
		out.q.close()
	}
	close(l.stop)
	for _, out := range l.outs {
		<-out.done
	}
	<-l.done
	if l.syslog != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if err := l.syslog.client.Close(ctx); err != nil {
			l.setErr(fmt.Errorf("accesslog: %w", err))
		}
		cancel()
	}
	l.reportDrops()
	return l.Err()
}

// bufWriter is the plain writer output (standard output).
type bufWriter struct {
	w   io.Writer
	buf []byte
}

func newBufWriter(w io.Writer) *bufWriter { return &bufWriter{w: w} }

func (b *bufWriter) write(p []byte) error {
	if _, err := b.w.Write(p); err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	return nil
}

func (b *bufWriter) flush() error { return nil }

// syslogOut formats lines as RFC 5424 messages for a syslog.Client (whose
// queue and spool are this output's).
type syslogOut struct {
	client   *syslog.Client
	msg      syslog.Message
	reported uint64
}

func newSyslogOut(o *SyslogOptions, block bool) (*syslogOut, error) {
	host := o.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	app := o.AppName
	if app == "" {
		app = "certgate"
	}
	cfg := o.Config
	if block {
		cfg.Overflow = syslog.OverflowBlock
	}
	c, err := syslog.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	return &syslogOut{client: c, msg: syslog.Message{
		Facility: syslog.FacilityLocal0, Severity: syslog.SeverityInfo,
		Hostname: syslog.CleanName(host, syslog.MaxHostname), AppName: syslog.CleanName(app, syslog.MaxAppName),
		ProcID: strconv.Itoa(os.Getpid()), MsgID: "access",
	}}, nil
}

// send sends line (without its newline) stamped t, formatted in the spare
// room after line in its own buffer (no lock, no allocation once the
// buffer has grown); it returns the buffer to keep.
func (s *syslogOut) send(t time.Time, line []byte) []byte {
	m := s.msg
	m.Time = t
	m.Msg = line[:len(line)-1]
	out, _ := m.Append(line[len(line):]) // the header was checked in newSyslogOut
	s.client.Send(out)
	if cap(out) > cap(line) {
		return out[:0]
	}
	return line
}

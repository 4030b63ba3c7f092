package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Overflow is what Send does when the queue and the spool are full.
type Overflow int

const (
	// OverflowDrop drops the message and counts it: the caller is never
	// slowed down.
	OverflowDrop Overflow = iota
	// OverflowBlock makes Send wait for room.
	OverflowBlock
)

// Defaults of [Config].
const (
	DefaultQueueLen     = 16384
	DefaultMaxMessage   = 64 << 10
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultDialTimeout  = 5 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// batchSize bounds one write: below TLS's 16 KiB record, so a failed write
// loses at most the record being written, which is sent again.
const batchSize = 15 << 10

// linger is how long the sender lets lines gather before a write when
// fewer than lingerLines are waiting: a line reaches the collector at most
// this much later, and a busy gateway pays one system call per batch, not
// per line.
const (
	linger      = 2 * time.Millisecond
	lingerLines = 64
)

// Config says where and how a [Client] delivers.
type Config struct {
	// Address is the collector's host:port.
	Address string
	// TLS, if set, makes the connection TLS (the client certificate, if
	// any, and the roots that verify the collector). ServerName defaults
	// to Address's host. nil is plain TCP.
	TLS *tls.Config
	// QueueLen is how many messages wait in memory (DefaultQueueLen).
	QueueLen int
	// MaxMessage is the largest message accepted (DefaultMaxMessage); a
	// larger one is refused with ErrTooLarge and counted as dropped.
	MaxMessage int
	// SpoolDir, if set, holds the on-disk spool, at most SpoolMaxBytes.
	SpoolDir      string
	SpoolMaxBytes int64
	Overflow      Overflow
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts, doubled after each failure with jitter.
	MinBackoff, MaxBackoff time.Duration
	DialTimeout            time.Duration
	// WriteTimeout bounds one write: a collector that stops reading for
	// longer is treated as gone and the connection is made again.
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// Stats are a Client's counters since New.
type Stats struct {
	Sent        uint64 // messages written to the collector
	Dropped     uint64 // messages refused by the overflow policy or too large
	Queued      int    // messages waiting in memory
	SpoolBytes  int64  // bytes in the spool (disk use)
	Connected   bool
	Connections uint64 // connections made
}

// Errors of Send.
var (
	ErrDropped  = errors.New("syslog: queue and spool full: message dropped")
	ErrTooLarge = errors.New("syslog: message too large: dropped")
	ErrClosed   = errors.New("syslog: client closed")
)

// Client delivers messages to one collector. Send is safe for concurrent
// use.
type Client struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	room   sync.Cond // signalled when the queue has room (OverflowBlock)
	ring   [][]byte  // framed messages; slots keep their capacity
	head   int
	n      int
	closed bool

	wake chan struct{}
	stop chan context.Context
	done chan struct{}

	sent, dropped, conns atomic.Uint64
	connected            atomic.Bool
	spoolBytes           atomic.Int64

	spool   *spool // sender goroutine only
	lostErr error
}

// New checks cfg, opens the spool and starts the sender. It does not wait
// for the collector: an unreachable one is retried in the background.
func New(cfg Config) (*Client, error) {
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("syslog: address: %w", err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MinBackoff, DefaultMinBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		if cfg.TLS.ServerName == "" {
			cfg.TLS.ServerName, _, _ = net.SplitHostPort(cfg.Address)
		}
	}
	c := &Client{
		cfg: cfg, log: cfg.Log, ring: make([][]byte, cfg.QueueLen),
		wake: make(chan struct{}, 1), stop: make(chan context.Context, 1), done: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.room.L = &c.mu
	if cfg.SpoolDir != "" {
		if cfg.SpoolMaxBytes <= 0 {
			return nil, errors.New("syslog: a spool directory needs a positive size limit")
		}
		s, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		c.spool = s
		c.spoolBytes.Store(s.total)
	}
	go c.run()
	return c, nil
}

// Send queues msg (one RFC 5424 message, unframed; it is copied). Under
// OverflowDrop it never blocks: a full queue returns ErrDropped.
func (c *Client) Send(msg []byte) error {
	if len(msg) > c.cfg.MaxMessage {
		c.dropped.Add(1)
		return ErrTooLarge
	}
	c.mu.Lock()
	for c.n == len(c.ring) && !c.closed && c.cfg.Overflow == OverflowBlock {
		c.room.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.n == len(c.ring) {
		c.mu.Unlock()
		c.dropped.Add(1)
		return ErrDropped
	}
	i := (c.head + c.n) % len(c.ring)
	c.ring[i] = AppendFrame(c.ring[i][:0], msg)
	c.n++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	q := c.n
	c.mu.Unlock()
	return Stats{
		Sent: c.sent.Load(), Dropped: c.dropped.Load(), Queued: q, SpoolBytes: c.spoolBytes.Load(),
		Connected: c.connected.Load(), Connections: c.conns.Load(),
	}
}

// Close stops accepting messages and delivers what is queued and spooled
// until ctx is done; then whatever is still in memory goes to the spool
// (for the next run). It returns an error if messages were lost: no spool
// room left for them when ctx ended.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return c.lostErr
	}
	c.closed = true
	c.room.Broadcast()
	c.mu.Unlock()
	c.stop <- ctx
	<-c.done
	return c.lostErr
}

// take moves whole frames from the queue to b, up to limit bytes (at least
// one frame), and returns b and how many frames.
func (c *Client) take(b []byte, limit int, fits func(int) bool) ([]byte, int) {
	c.mu.Lock()
	k := 0
	for c.n > 0 {
		f := c.ring[c.head]
		if (k > 0 && len(b)+len(f) > limit) || !fits(len(b)+len(f)) {
			break
		}
		b = append(b, f...)
		if cap(f) > 16<<10 {
			c.ring[c.head] = nil // a rare large message does not pin its slot's memory
		}
		c.head = (c.head + 1) % len(c.ring)
		c.n--
		k++
	}
	if k > 0 {
		c.room.Broadcast()
	}
	c.mu.Unlock()
	return b, k
}

func (c *Client) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// conn is one connection and the signal that the collector closed it.
type conn struct {
	net.Conn
	dead chan struct{}
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", c.cfg.Address)
	if err != nil {
		return nil, err
	}
	nc := raw
	if c.cfg.TLS != nil {
		tc := tls.Client(raw, c.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		nc = tc
	}
	cn := &conn{Conn: nc, dead: make(chan struct{})}
	// A collector never writes: a read returns only when it closed the
	// connection (or it broke), and then nothing more is written to it.
	go func() {
		var b [256]byte
		for {
			if _, err := nc.Read(b[:]); err != nil {
				close(cn.dead)
				return
			}
		}
	}()
	return cn, nil
}

func (cn *conn) alive() bool {
	select {
	case <-cn.dead:
		return false
	default:
		return true
	}
}

// write writes b (whole frames) and returns how many bytes and frames of
// it are known written: whole frames only, a frame cut by an error is sent
// again.
func (c *Client) write(cn *conn, b []byte) (int, int, error) {
	cn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	n, err := cn.Write(b)
	if err == nil {
		return n, countFrames(b), nil
	}
	done := 0
	for {
		k, _ := frameEnd(b[done:n])
		if k == 0 {
			break
		}
		done += k
	}
	return done, countFrames(b[:done]), err
}

func countFrames(b []byte) int {
	k := 0
	for len(b) > 0 {
		n, _ := frameEnd(b)
		if n == 0 {
			break
		}
		b, k = b[n:], k+1
	}
	return k
}

// run is the sender: connect, send the spool then the queue, spill the
// queue to the spool while the collector is away, and drain on Close.
func (c *Client) run() {
	defer close(c.done)
	var (
		cn       *conn
		pending  []byte // frames taken from the queue, not yet written
		buf      = make([]byte, 0, batchSize+c.cfg.MaxMessage+16)
		backoff  = c.cfg.MinBackoff
		nextDial time.Time
		drainCtx context.Context
		failing  bool
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drop := func() {
		if cn != nil {
			cn.Close()
			cn = nil
			c.connected.Store(false)
		}
	}
	defer drop()
	spoolFits := func(n int) bool { return c.spool.room(n) }
	always := func(int) bool { return true }
	for {
		draining := drainCtx != nil
		if draining && drainCtx.Err() != nil {
			c.finish(pending)
			return
		}
		if cn != nil && !cn.alive() {
			c.log.Warn("syslog: the collector closed the connection", "address", c.cfg.Address)
			drop()
			nextDial = time.Now()
		}
		// While the collector is away, or the spool is being caught up,
		// the queue goes to the spool, in order.
		if c.spool != nil && (cn == nil || !c.spool.empty() || len(pending) > 0) {
			if len(pending) > 0 && c.spool.room(len(pending)) {
				if err := c.spool.append(pending); err != nil {
					c.log.Error("syslog: spool write failed", "err", err)
				} else {
					pending = pending[:0]
				}
			}
			if len(pending) == 0 {
				for {
					b, k := c.take(buf[:0], 1<<20, spoolFits)
					if k == 0 {
						break
					}
					if err := c.spool.append(b); err != nil {
						c.log.Error("syslog: spool write failed", "err", err)
						c.dropped.Add(uint64(k))
					}
				}
			}
			c.spoolBytes.Store(c.spool.total)
		}
		if cn == nil && !time.Now().Before(nextDial) {
			var err error
			cn, err = c.dial(ctx)
			if err != nil {
				if !failing {
					c.log.Warn("syslog: cannot reach the collector; retrying", "address", c.cfg.Address, "err", err)
				}
				failing = true
				nextDial = time.Now().Add(backoff/2 + rand.N(backoff/2+1))
				backoff = min(backoff*2, c.cfg.MaxBackoff)
			} else {
				if failing {
					c.log.Info("syslog: connected to the collector again", "address", c.cfg.Address)
				}
				failing, backoff = false, c.cfg.MinBackoff
				c.conns.Add(1)
				c.connected.Store(true)
			}
		}
		if cn != nil {
			var b []byte
			fromSpool := false
			switch {
			case c.spool != nil && !c.spool.empty():
				var err error
				if b, err = c.spool.peek(batchSize); err != nil {
					c.log.Error("syslog: spool", "err", err)
					continue
				}
				fromSpool = true
			case len(pending) > 0:
				b = pending
			default:
				if !draining && c.queued() < lingerLines {
					// Let a few lines gather: one write (and one
					// wake-up) carries many, instead of one each.
					time.Sleep(linger)
				}
				pending, _ = c.take(pending[:0], batchSize, always)
				b = pending
			}
			if len(b) > 0 {
				n, k, err := c.write(cn, b)
				c.sent.Add(uint64(k))
				if fromSpool {
					if cerr := c.spool.consume(n); cerr != nil {
						c.log.Error("syslog: spool", "err", cerr)
					}
					c.spoolBytes.Store(c.spool.total)
				} else {
					pending = append(pending[:0], pending[n:]...)
				}
				if err != nil {
					c.log.Warn("syslog: write to the collector failed; reconnecting", "address", c.cfg.Address, "err", err)
					drop()
					nextDial = time.Now().Add(c.cfg.MinBackoff)
				}
				continue
			}
		}
		// Nothing to send now.
		if draining && len(pending) == 0 && c.queued() == 0 && (c.spool == nil || c.spool.empty()) {
			c.finish(nil)
			return
		}
		var dead <-chan struct{}
		if cn != nil {
			dead = cn.dead
		} else {
			timer.Reset(time.Until(nextDial))
		}
		var stopped <-chan struct{}
		if draining {
			stopped = drainCtx.Done()
		}
		select {
		case <-c.wake:
		case <-dead:
		case <-timer.C:
		case <-stopped:
		case drainCtx = <-c.stop:
		}
		if cn == nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// finish spools what is left at Close and records what could not be kept.
func (c *Client) finish(pending []byte) {
	lost := 0
	if c.spool != nil {
		if len(pending) > 0 {
			if c.spool.room(len(pending)) && c.spool.append(pending) == nil {
				pending = nil
			}
		}
		for {
			b, k := c.take(nil, 1<<20, c.spool.room)
			if k == 0 {
				break
			}
			if c.spool.append(b) != nil {
				lost += k
			}
		}
		if err := c.spool.close(); err != nil {
			c.log.Error("syslog: spool", "err", err)
		}
		c.spoolBytes.Store(c.spool.total)
	}
	lost += countFrames(pending) + c.queued()
	if lost > 0 {
		c.dropped.Add(uint64(lost))
		c.lostErr = fmt.Errorf("syslog: %d messages not delivered at close", lost)
	}
}

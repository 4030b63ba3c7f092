package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certgate/certgate/internal/gateway/h1"
)

// upstreamBufferSize is the read and write buffer of an upstream
// connection: big enough for a typical response head and small body in one
// read, small enough for thousands of pooled connections.
const upstreamBufferSize = 16 << 10

// maxResponseHead bounds an upstream's status line and headers.
const maxResponseHead = 64 << 10

// upstream is one backend address with its pool of idle keep-alive
// connections.
type upstream struct {
	key       string
	scheme    string
	addr      string // host:port
	basePath  string // prepended to the request target, "" for none
	hostName  string // for TLS server name verification
	tlsConfig *tls.Config
	// clientCert is the gateway's certificate when the upstream asks for
	// it (upstream_client_cert), nil otherwise.
	clientCert func() *tls.Certificate

	dialTimeout   time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int

	mu     sync.Mutex
	idle   []*upConn
	closed bool

	// transport serves requests that came in over HTTP/2.
	transport *http.Transport
}

func (u *upstream) initTransport() {
	d := &net.Dialer{Timeout: u.dialTimeout}
	u.transport = &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       u.tlsConfig,
		TLSHandshakeTimeout:   u.dialTimeout,
		ResponseHeaderTimeout: u.headerTimeout,
		IdleConnTimeout:       u.idleTimeout,
		MaxIdleConnsPerHost:   u.maxIdle,
		DisableCompression:    true,
	}
	switch {
	case u.tlsConfig == nil:
	case u.clientCert != nil:
		u.tlsConfig.ClientSessionCache = newCertSessionCache(u.clientCert, u.maxIdle)
	default:
		u.tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(u.maxIdle)
	}
}

type upstreamOptions struct {
	rawURL        string
	tlsConfig     *tls.Config // nil for http://
	dialTimeout   time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int
}

func newUpstream(o upstreamOptions) (*upstream, error) {
	u, err := url.Parse(o.rawURL)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %q: %w", o.rawURL, err)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	up := &upstream{
		key:           o.rawURL,
		scheme:        u.Scheme,
		addr:          addr,
		basePath:      strings.TrimSuffix(u.EscapedPath(), "/"),
		hostName:      u.Hostname(),
		tlsConfig:     o.tlsConfig,
		dialTimeout:   o.dialTimeout,
		headerTimeout: o.headerTimeout,
		idleTimeout:   o.idleTimeout,
		maxIdle:       o.maxIdle,
	}
	return up, nil
}

// upConn is one connection to an upstream.
type upConn struct {
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	head      []byte
	resp      h1.Response
	idleSince time.Time

	// rc is the socket of a plain TCP upstream (nil for TLS), for
	// writeAwait; step is its callback, made once per connection so a
	// request allocates none, and pending, wrote and werr its state.
	rc      syscall.RawConn
	step    func(uintptr) bool
	pending []byte
	wrote   bool
	werr    error
}

// awaitFreshFor bounds how long a pooled connection may have waited for
// writeAwait to wait for its answer without first trying a read; see
// writeAwait.
const awaitFreshFor = 100 * time.Millisecond

// writeAwait writes p, a whole request head, and returns once the
// upstream's answer is readable (or the read deadline, which the caller
// set, passed), without the read that Go's netpoller otherwise tries
// first and that fails with EAGAIN on nearly every request: the answer
// cannot be there before the request was sent. It relies on the order
// syscall.RawConn.Read guarantees: the socket's read readiness is reset
// before step runs, so the readiness the answer brings, arriving after the
// write inside step, wakes the wait. What arrived before that reset would
// not wake it, so this is used only where nothing can be waiting unread:
// a fresh connection, or one pooled for less than awaitFreshFor after its
// last answer was read completely (put checks that nothing was left
// buffered). Where it cannot be used it is a plain write, and a wait that
// ends early only costs the read it would have saved. Errors of the wait
// itself are left to the read that follows (a passed deadline, a closed
// socket), which reports them as before.
func (uc *upConn) writeAwait(p []byte, reused bool, now time.Time) error {
	if uc.rc == nil || (reused && now.Sub(uc.idleSince) >= awaitFreshFor) {
		_, err := uc.c.Write(p)
		return err
	}
	uc.pending, uc.wrote, uc.werr = p, false, nil
	uc.rc.Read(uc.step)
	wrote, err := uc.wrote, uc.werr
	uc.pending, uc.werr = nil, nil
	if !wrote {
		// The wait failed before step ran (a closed socket): the write
		// reports it as it always did.
		_, err = uc.c.Write(p)
	}
	return err
}

// awaitStep is writeAwait's callback: the first call writes and asks to
// wait for readability (false), the next one, after the wait, ends it
// without reading.
func (uc *upConn) awaitStep(uintptr) bool {
	if uc.wrote {
		return true
	}
	uc.wrote = true
	_, uc.werr = uc.c.Write(uc.pending)
	return uc.werr != nil
}

// get returns an idle connection, or dials a new one. reused tells the
// caller whether a failure before the first response byte may be retried.
// now is the time (the caller's clock read, used again for the request).
func (u *upstream) get(ctx context.Context, now time.Time) (uc *upConn, reused bool, err error) {
	u.mu.Lock()
	for len(u.idle) > 0 {
		uc = u.idle[len(u.idle)-1]
		u.idle[len(u.idle)-1] = nil
		u.idle = u.idle[:len(u.idle)-1]
		if now.Sub(uc.idleSince) < u.idleTimeout {
			u.mu.Unlock()
			return uc, true, nil
		}
		uc.c.Close()
	}
	u.mu.Unlock()
	uc, err = u.dial(ctx)
	return uc, false, err
}

func (u *upstream) dial(ctx context.Context) (*upConn, error) {
	ctx, cancel := context.WithTimeout(ctx, u.dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.addr, err)
	}
	var rc syscall.RawConn
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if u.tlsConfig == nil {
			rc, _ = tc.SyscallConn()
		}
	}
	if u.tlsConfig != nil {
		tc := tls.Client(c, u.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", u.addr, err)
		}
		c = tc
	}
	uc := &upConn{
		c:  c,
		br: bufio.NewReaderSize(c, upstreamBufferSize),
		bw: bufio.NewWriterSize(c, upstreamBufferSize),
		rc: rc,
	}
	uc.step = uc.awaitStep
	return uc, nil
}

// put returns a connection whose last response was read completely, at
// now.
func (u *upstream) put(uc *upConn, now time.Time) {
	uc.idleSince = now
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.maxIdle || uc.br.Buffered() > 0 {
		u.mu.Unlock()
		uc.c.Close()
		return
	}
	u.idle = append(u.idle, uc)
	u.mu.Unlock()
}

// close closes idle connections and makes put close the rest.
func (u *upstream) close() {
	u.mu.Lock()
	u.closed = true
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, uc := range idle {
		uc.c.Close()
	}
	u.transport.CloseIdleConnections()
}

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
}

// get returns an idle connection, or dials a new one. reused tells the
// caller whether a failure before the first response byte may be retried.
func (u *upstream) get(ctx context.Context) (uc *upConn, reused bool, err error) {
	now := time.Now()
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
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if u.tlsConfig != nil {
		tc := tls.Client(c, u.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", u.addr, err)
		}
		c = tc
	}
	return &upConn{
		c:  c,
		br: bufio.NewReaderSize(c, upstreamBufferSize),
		bw: bufio.NewWriterSize(c, upstreamBufferSize),
	}, nil
}

// put returns a connection whose last response was read completely.
func (u *upstream) put(uc *upConn) {
	uc.idleSince = time.Now()
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

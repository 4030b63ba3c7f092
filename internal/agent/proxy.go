package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/drain"
	"github.com/certgate/certgate/internal/tlspolicy"
)

// retiredIdleSweep is how long after its last request a retired connection
// pool closes its idle connections once more. HTTP/1 connections go back to
// the pool just after a response body ends, so a close right at that moment
// could miss one; no request can use a retired pool anyway, so this only
// frees sockets sooner than the gateway or the idle timeout would.
const retiredIdleSweep = time.Second

// Proxy is the agent's local forward proxy: plain HTTP in on loopback, mTLS
// out to one gateway with the agent's current certificate.
type Proxy struct {
	agent    *Agent
	upstream *url.URL
	// serverName, when set, is the name the gateway's certificate is
	// checked against and the Host sent, while the upstream URL says
	// where to dial (like curl --resolve).
	serverName atomic.Pointer[string]
	log        *slog.Logger
	gen        atomic.Pointer[generation]
	rp         *httputil.ReverseProxy
}

// generation is a connection pool whose connections all began while one
// certificate was current.
type generation struct {
	tr       *http.Transport
	inflight atomic.Int64
	retired  atomic.Bool
}

// NewProxy returns a proxy to upstream (https://GATEWAY[:PORT][/prefix])
// that follows a's renewals. log may be nil.
func NewProxy(a *Agent, upstream string, log *slog.Logger) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("agent: upstream %q must be https://HOST[:PORT][/PATH]", upstream)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{agent: a, upstream: u, log: log}
	p.gen.Store(p.newGeneration())
	a.onRotate(p.rotate)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			if name := p.serverName.Load(); name != nil {
				if port := u.Port(); port != "" {
					pr.Out.Host = net.JoinHostPort(*name, port)
				} else {
					pr.Out.Host = *name
				}
			}
		},
		Transport:    roundTripperFunc(p.roundTripRetry),
		ErrorHandler: p.fail,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// SetServerName makes the proxy check the gateway's certificate for name,
// and send it as the Host, instead of the upstream URL's host, which stays
// the address dialled: for a gateway reached by an address its
// certificate does not name.
func (p *Proxy) SetServerName(name string) {
	p.serverName.Store(&name)
	old := p.gen.Swap(p.newGeneration())
	old.tr.CloseIdleConnections()
}

func (p *Proxy) newGeneration() *generation {
	cur := p.agent.cur.Load()
	serverName := ""
	if name := p.serverName.Load(); name != nil {
		serverName = *name
	}
	tc := tlspolicy.Apply(&tls.Config{
		ServerName:           serverName,
		RootCAs:              cur.Roots,
		GetClientCertificate: p.agent.GetClientCertificate,
		// The gateway's certificate is judged at the agent's "now".
		Time: p.agent.o.Clock.Now,
		// No session cache: a resumed session would carry the identity of
		// the certificate it began with.
	})
	return &generation{tr: &http.Transport{
		Proxy:                 nil, // the gateway is reached directly, never through $HTTPS_PROXY
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// rotate is called after a renewal: new requests go to a new pool whose
// connections carry the new certificate; the old pool closes its idle
// connections now and the busy ones once their requests end.
func (p *Proxy) rotate() {
	old := p.gen.Swap(p.newGeneration())
	old.retired.Store(true)
	old.tr.CloseIdleConnections()
	if old.inflight.Load() == 0 {
		time.AfterFunc(retiredIdleSweep, old.tr.CloseIdleConnections)
	}
}

func (g *generation) done() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.tr.CloseIdleConnections()
		time.AfterFunc(retiredIdleSweep, g.tr.CloseIdleConnections)
	}
}

// ServeHTTP proxies r to the gateway.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		http.Error(w, "certgate agent: CONNECT is not supported; send plain HTTP requests, the agent adds TLS", http.StatusMethodNotAllowed)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	p.log.Warn("proxy request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "certgate agent: gateway request failed: "+err.Error(), http.StatusBadGateway)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTripRetry sends req once more, on the current pool, if it failed
// without an answer and may safely be repeated: its method is idempotent
// (RFC 9110 section 9.2.2) or it carries an Idempotency-Key, and it has no
// body to replay. That covers a connection the gateway closed under it.
func (p *Proxy) roundTripRetry(req *http.Request) (*http.Response, error) {
	resp, err := p.roundTrip(req)
	if err == nil || req.Context().Err() != nil || !replayable(req) {
		return resp, err
	}
	p.log.Info("retrying a request once after a connection failure", "method", req.Method, "path", req.URL.Path, "err", err)
	return p.roundTrip(req)
}

func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	g := p.gen.Load()
	g.inflight.Add(1)
	resp, err := g.tr.RoundTrip(req)
	if err != nil {
		g.done()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The upgraded connection leaves the pool for good; the body must
		// stay the transport's io.ReadWriteCloser.
		g.done()
		return resp, nil
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, g: g}
	return resp, nil
}

// countedBody tells its generation when the request is over.
type countedBody struct {
	io.ReadCloser
	g    *generation
	once sync.Once
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.g.done)
	}
	return n, err
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.g.done)
	return err
}

// Serve serves the proxy on ln until ctx ends, then shuts down (open
// requests get up to 5 s).
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	var conns drain.Conns
	hs.ConnState = conns.Track
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: proxy: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	active, idle := conns.Count()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	p.gen.Load().tr.CloseIdleConnections()
	if err != nil {
		p.log.Error("proxy stopped before every request finished", "err", err, "in_flight", active, "took", time.Since(start).Round(time.Millisecond).String())
		return fmt.Errorf("agent: proxy shutdown: %w", err)
	}
	p.log.Info("proxy stopped", "drained_requests", active, "closed_idle", idle, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// CheckListen refuses a proxy address that is not loopback unless
// allowRemote: whoever can reach the proxy acts with this client's
// identity.
func CheckListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("agent: listen address %q: %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("agent: listen address %q is not loopback: anyone who can connect to the proxy acts as this client; use 127.0.0.1:PORT, or --allow-remote if that is really meant", addr)
}

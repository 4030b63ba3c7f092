package certgatetls

import (
	"crypto/tls"
	"github.com/certgate/certgate/internal/tlspolicy"
	"net"
	"net/http"
	"sync"
	"time"
)

// ModernCipherSuites are the TLS 1.2 suites certgate allows: ECDHE key
// exchange (forward secrecy) and AEAD ciphers only. TLS 1.3 suites are not
// configurable in Go and are all of that kind. Every client and server this
// package builds uses them, with TLS 1.2 as the minimum.
var ModernCipherSuites = tlspolicy.CipherSuites

// ClientOptions configures [NewHTTPClient]. The zero value is ready to use.
type ClientOptions struct {
	// Timeout bounds a whole request, body included (default 30 s;
	// negative: no limit, for streaming).
	Timeout time.Duration
	// ServerName overrides the name checked in the server's certificate
	// (default: the host of each request's URL).
	ServerName string
	// DisableHTTP2 keeps to HTTP/1.1.
	DisableHTTP2 bool
}

// retireAfter is when a replaced transport closes its idle connections a
// second time: requests that were in flight at the rotation have put their
// connections back by then, unless they stream. IdleConnTimeout closes
// whatever is left.
const retireAfter = 30 * time.Second

// NewHTTPClient returns an HTTP client that presents src's certificate and
// trusts only servers whose certificate chains to src's bundle, over TLS
// 1.2 or newer with modern suites.
//
// When src loads new credentials, the next request starts a fresh
// connection pool: idle connections made with the old certificate are
// closed, requests in flight finish on theirs, and every later request
// handshakes with the new certificate. No request fails because of a
// rotation.
func NewHTTPClient(src *Source, o ClientOptions) *http.Client {
	timeout := o.Timeout
	switch {
	case timeout == 0:
		timeout = 30 * time.Second
	case timeout < 0:
		timeout = 0
	}
	return &http.Client{Transport: &rotatingTransport{src: src, o: o}, Timeout: timeout}
}

// rotatingTransport keeps one http.Transport per generation of the
// source's credentials. A transport's pool only ever holds connections
// made with one certificate, so after a rotation no request reuses a
// connection of the old one, which a single transport could not promise:
// under steady load its busy connections never become idle.
type rotatingTransport struct {
	src *Source
	o   ClientOptions

	mu  sync.Mutex
	gen uint64
	cur *http.Transport
}

func (t *rotatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.transport().RoundTrip(r)
}

// CloseIdleConnections lets [http.Client.CloseIdleConnections] reach the
// current pool.
func (t *rotatingTransport) CloseIdleConnections() {
	t.mu.Lock()
	cur := t.cur
	t.mu.Unlock()
	if cur != nil {
		cur.CloseIdleConnections()
	}
}

func (t *rotatingTransport) transport() *http.Transport {
	c := t.src.Current()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && t.gen == c.Generation {
		return t.cur
	}
	if old := t.cur; old != nil {
		old.CloseIdleConnections()
		time.AfterFunc(retireAfter, old.CloseIdleConnections)
	}
	t.cur, t.gen = t.newTransport(c), c.Generation
	return t.cur
}

func (t *rotatingTransport) newTransport(c *Credentials) *http.Transport {
	return &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig: tlspolicy.Apply(&tls.Config{
			// The roots of this generation: a new bundle means a new
			// generation and a new transport.
			RootCAs:    c.Roots,
			ServerName: t.o.ServerName,
			// Always the newest certificate, even on a connection this
			// transport opens after the next rotation.
			GetClientCertificate: t.src.GetClientCertificate,
		}),
		ForceAttemptHTTP2:     !t.o.DisableHTTP2,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

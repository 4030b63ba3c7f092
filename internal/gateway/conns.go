package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
)

// peer is what the handshake established about a client, computed once per
// connection.
type peer struct {
	leaf        *x509.Certificate
	chain       []*x509.Certificate // as sent, leaf first
	id          string
	serial      string
	fingerprint string
	notAfter    time.Time // earliest NotAfter in the chain sent
	tlsVersion  string
	resumed     bool
	client      string

	// The identity header values, built on the first request that sends
	// one. They are a few KiB per certificate (two base64 certificates):
	// interned, so that the connections of one certificate share one
	// copy, kept while a handle to it is.
	hdrOnce         sync.Once
	clientCert      unique.Handle[string] // RFC 9440 Client-Cert
	clientCertChain unique.Handle[string] // RFC 9440 Client-Cert-Chain
	xfcc            unique.Handle[string] // Envoy X-Forwarded-Client-Cert
}

// newPeer is the peer record of a connection whose leaf's record is li.
func newPeer(cs *tls.ConnectionState, remote net.Addr, li *leafInfo) *peer {
	leaf := cs.PeerCertificates[0]
	p := &peer{
		leaf:        leaf,
		chain:       cs.PeerCertificates,
		id:          li.id,
		serial:      li.serial,
		fingerprint: li.fingerprint,
		notAfter:    leaf.NotAfter,
		tlsVersion:  tlsVersionName(cs.Version),
		resumed:     cs.DidResume,
		client:      remote.String(),
	}
	for _, c := range cs.PeerCertificates[1:] {
		if c.NotAfter.Before(p.notAfter) {
			p.notAfter = c.NotAfter
		}
	}
	return p
}

// identityHeaders computes the header values once per connection, shared
// with the other connections of the certificate.
func (p *peer) identityHeaders(by string) {
	p.hdrOnce.Do(func() {
		p.clientCert = unique.Make(":" + base64.StdEncoding.EncodeToString(p.leaf.Raw) + ":")
		parts := make([]string, 0, len(p.chain)-1)
		for _, c := range p.chain[1:] {
			parts = append(parts, ":"+base64.StdEncoding.EncodeToString(c.Raw)+":")
		}
		p.clientCertChain = unique.Make(strings.Join(parts, ", "))
		var b strings.Builder
		if by != "" {
			b.WriteString("By=" + by + ";")
		}
		b.WriteString("Hash=" + p.fingerprint)
		b.WriteString(`;Subject="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.leaf.Subject.String()) + `"`)
		b.WriteString(";URI=" + p.id)
		p.xfcc = unique.Make(b.String())
	})
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS1.3"
	case tls.VersionTLS12:
		return "TLS1.2"
	}
	return tls.VersionName(v)
}

// tracked is one live client connection.
type tracked struct {
	conn   net.Conn // the TLS connection
	raw    net.Conn // the TCP connection under it
	peer   *peer
	start  time.Time
	closed atomic.Bool
	// tunnel is set once the connection pipes raw bytes (WebSocket, TCP
	// route), where no request is checked again; route names its route.
	tunnel atomic.Bool
	route  atomic.Pointer[string]
	// parkedUntil is set by serveH1 when it stops waiting for the next
	// request on its goroutine: the wait goes on, until then, on a new
	// one (goServe). Only the goroutine serving the connection uses it.
	parkedUntil time.Time
	// next and prev link the connections of its serial in the tracker,
	// listed says it is there; the tracker's lock guards them.
	next, prev *tracked
	listed     bool
	// onHandshaker is set while an HTTP/1.1 connection is served on the
	// handshaker that ran its handshake (serve.go, serveFirst): its waits
	// for a request are then at most handshakerWait.
	onHandshaker bool
	// slot is the connection's place in the poller (park.go) plus one
	// while it is parked, 0 otherwise; the poller's lock guards it.
	slot int32
}

func (t *tracked) close() bool {
	if t.closed.Swap(true) {
		return false
	}
	t.conn.Close()
	return true
}

// tracker knows every live connection by certificate serial, so that a
// connection can be closed when its certificate expires or is revoked.
// The connections of a serial are a list linked through the tracked
// values themselves (next, prev), so tracking a connection allocates
// nothing: before, each serial had a map of its connections, made again
// for the first connection of a serial after its last one ended (every
// connection of a client that does not overlap its connections), which
// was ~0.8% of the gateway's CPU under resumed handshakes with its GC
// share.
type tracker struct {
	mu       sync.Mutex
	bySerial map[string]*tracked // the first of each serial's list
	n        int
}

func newTracker() *tracker {
	return &tracker{bySerial: make(map[string]*tracked)}
}

func (tr *tracker) add(t *tracked) {
	tr.mu.Lock()
	if !t.listed {
		head := tr.bySerial[t.peer.serial]
		t.next, t.prev, t.listed = head, nil, true
		if head != nil {
			head.prev = t
		}
		tr.bySerial[t.peer.serial] = t
		tr.n++
	}
	tr.mu.Unlock()
}

// remove stops tracking t; it may be called again, or for a connection
// never tracked.
func (tr *tracker) remove(t *tracked) {
	tr.mu.Lock()
	if t.listed {
		if t.prev != nil {
			t.prev.next = t.next
		} else if t.next != nil {
			tr.bySerial[t.peer.serial] = t.next
		} else {
			delete(tr.bySerial, t.peer.serial)
		}
		if t.next != nil {
			t.next.prev = t.prev
		}
		t.next, t.prev, t.listed = nil, nil, false
		tr.n--
	}
	tr.mu.Unlock()
}

func (tr *tracker) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.n
}

// collect returns the connections f selects.
func (tr *tracker) collect(f func(*tracked) bool) []*tracked {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []*tracked
	for _, t := range tr.bySerial {
		for ; t != nil; t = t.next {
			if f(t) {
				out = append(out, t)
			}
		}
	}
	return out
}

func (tr *tracker) serial(s string) []*tracked {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []*tracked
	for t := tr.bySerial[s]; t != nil; t = t.next {
		out = append(out, t)
	}
	return out
}

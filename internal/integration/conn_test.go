package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// client is an enrolled client: its TLS certificate, serial and identity.
type client struct {
	cert   tls.Certificate
	serial string
	id     string
}

// clientTLS is the TLS config of c dialling a gateway on 127.0.0.1 that
// roots verify.
func clientTLS(roots *x509.CertPool, c client, protos ...string) *tls.Config {
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{c.cert}, NextProtos: protos}
}

// closedConn signals when a read on the connection fails.
type closedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *closedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.done) })
	}
	return n, err
}

func watchConn(c net.Conn) *closedConn { return &closedConn{Conn: c, done: make(chan struct{})} }

// get sends one HTTP/1.1 request on a keep-alive connection.
func get(c net.Conn, br *bufio.Reader) (int, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// openLive opens a keep-alive HTTP/1.1 connection to addr, proves it with
// a request, and returns it, its reader, and a channel closed when the
// gateway closes it.
func openLive(addr string, tc *tls.Config) (*tls.Conn, *bufio.Reader, <-chan struct{}, error) {
	raw, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return nil, nil, nil, err
	}
	w := watchConn(raw)
	br := bufio.NewReader(w)
	if code, err := get(raw, br); err != nil || code != http.StatusOK {
		raw.Close()
		if err == nil {
			err = &statusError{code}
		}
		return nil, nil, nil, err
	}
	return raw, br, w.done, nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "first request: status " + http.StatusText(e.code) }

// waitRead starts a reader that makes a close visible on the connection.
func waitRead(r io.Reader) { go io.Copy(io.Discard, r) }

// refused dials with tc, sends one request and reports how the gateway
// refused it: the TLS alert (TCP routes refuse in the handshake), or, from
// the HTTP listener, which completes a refused client's handshake and
// answers it, an error "refused: STATUS CODE" for a 401 or 403 answer
// whose JSON error code names the reason. nil when the request was served.
func refused(addr string, tc *tls.Config) error {
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: api\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode == 401 || resp.StatusCode == 403 {
		return fmt.Errorf("refused: %d %s", resp.StatusCode, body.Error.Code)
	}
	return nil
}

// countingCache records whether a client offered a session to resume.
type countingCache struct {
	tls.ClientSessionCache
	offered atomic.Int32
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok {
		c.offered.Add(1)
	}
	return s, ok
}

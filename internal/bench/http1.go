package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/certgate/certgate/internal/gateway/h1"
)

// The TLS load's side of an HTTP/1.1 exchange: it sends fixed requests and
// reads the answers with the gateway's codec (internal/gateway/h1), no
// header map and no allocation per answer.

// maxHead bounds the head of an answer or of a request the upstream reads.
const maxHead = 16 << 10

// answers reads the answers to GET requests on one connection.
type answers struct {
	br   *bufio.Reader
	head []byte
	resp h1.Response
}

func newAnswers(c net.Conn) *answers {
	return &answers{br: bufio.NewReaderSize(c, 4<<10), head: make([]byte, 0, 1<<10)}
}

// readHead reads and parses the next answer's head and returns its status.
// An informational answer (1xx) is an error: the load sends no request
// that asks for one.
func (a *answers) readHead() (int, error) {
	var err error
	if a.head, err = h1.ReadHead(a.br, a.head, maxHead); err != nil {
		return 0, fmt.Errorf("reading the response head: %w", err)
	}
	if err := h1.ParseResponse(a.head, &a.resp); err != nil {
		return 0, err
	}
	if a.resp.Status < 200 {
		return 0, fmt.Errorf("unexpected status %d", a.resp.Status)
	}
	return a.resp.Status, nil
}

// read reads one whole answer on a keep-alive connection: head and body,
// framed by Content-Length or chunked encoding, and returns its status.
func (a *answers) read() (int, error) {
	status, err := a.readHead()
	if err != nil {
		return 0, err
	}
	if a.resp.Framing("GET") == h1.FramingEOF {
		return 0, errors.New("a keep-alive response without Content-Length or chunked framing")
	}
	if _, err := h1.DiscardBody(a.br, &a.resp, "GET"); err != nil {
		return 0, fmt.Errorf("reading the body: %w", err)
	}
	return status, nil
}

// exchange writes one request on a keep-alive connection and reads the
// whole response. Any complete response below 500 counts: a 403 from a
// route check is as much work for the server as a 200.
func exchange(c net.Conn, a *answers, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	status, err := a.read()
	if err != nil {
		return err
	}
	if status >= 500 {
		return fmt.Errorf("status %d", status)
	}
	return nil
}

// exchangeClose writes a Connection: close request, reads the answer's
// head and then the connection to its end: the cheapest complete exchange
// for the load generator.
func exchangeClose(c net.Conn, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	a := newAnswers(c)
	status, err := a.readHead()
	if err != nil {
		return err
	}
	if status >= 500 {
		return fmt.Errorf("status %d", status)
	}
	if _, err := io.Copy(io.Discard, a.br); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	return nil
}

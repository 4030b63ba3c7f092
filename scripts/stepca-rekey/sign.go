package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sign measures step-ca's POST /1.0/sign over keep-alive connections; see
// the package comment.
func sign(args []string) error {
	if len(args) != 7 {
		return errors.New("usage: stepca-rekey -sign CA_URL ROOT PID COUNT CLIENTS DURATION WORKDIR")
	}
	c, err := parseCommon(args[:6])
	if err != nil {
		return err
	}
	u, count := c.url, c.count
	reqs := make([][]byte, count)
	for i := range reqs {
		body, err := os.ReadFile(filepath.Join(args[6], fmt.Sprintf("sign-%d.json", i)))
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		reqs[i] = append([]byte("POST /1.0/sign HTTP/1.1\r\nHost: "+u.Host+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	}
	conf := &tls.Config{RootCAs: c.roots, ServerName: u.Hostname()}
	addr := net.JoinHostPort("127.0.0.1", u.Port())
	// One keep-alive connection per client, opened and used once before
	// the clock starts: the handshakes are not measured.
	conns := make([]*conn, c.clients)
	for i := range conns {
		tc, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer tc.Close()
		conns[i] = &conn{c: tc, r: bufio.NewReader(tc)}
		if _, err := conns[i].do([]byte("GET /health HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n"), http.StatusOK, nil); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	// Each goroutine of measure takes the next free connection and keeps it.
	free := make(chan *conn, len(conns))
	for _, cn := range conns {
		free <- cn
	}
	return c.measure("issued", func(i int) error {
		cn := <-free
		_, err := cn.do(reqs[i], http.StatusCreated, []byte(`"crt"`))
		if err == nil {
			free <- cn // a failed connection is not used again
		}
		return err
	}, nil, true)
}

// conn is one keep-alive connection.
type conn struct {
	c *tls.Conn
	r *bufio.Reader
}

// do sends req and reads the answer, which must have status want and, if
// contains is set, contain it.
func (c *conn) do(req []byte, want int, contains []byte) ([]byte, error) {
	if err := c.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, fmt.Errorf("deadline: %w", err)
	}
	if _, err := c.c.Write(req); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("response body: %w", err)
	}
	if resp.StatusCode != want || (contains != nil && !bytes.Contains(body, contains)) {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return body, nil
}

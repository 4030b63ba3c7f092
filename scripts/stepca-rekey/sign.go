package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sign measures step-ca's POST /1.0/sign over keep-alive connections; see
// the package comment.
func sign(args []string) error {
	if len(args) != 7 {
		return errors.New("usage: stepca-rekey -sign CA_URL ROOT PID COUNT CLIENTS DURATION WORKDIR")
	}
	u, err := url.Parse(args[0])
	if err != nil {
		return fmt.Errorf("CA URL: %w", err)
	}
	rootPEM, err := os.ReadFile(args[1])
	if err != nil {
		return fmt.Errorf("reading the roots: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return fmt.Errorf("no certificate in %s", args[1])
	}
	var n [4]int
	for i, a := range args[2:6] {
		if n[i], err = strconv.Atoi(a); err != nil {
			return fmt.Errorf("argument %q: %w", a, err)
		}
	}
	pid, count, clients, duration := n[0], n[1], n[2], time.Duration(n[3])*time.Second
	reqs := make([][]byte, count)
	for i := range reqs {
		body, err := os.ReadFile(filepath.Join(args[6], fmt.Sprintf("sign-%d.json", i)))
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		reqs[i] = append([]byte("POST /1.0/sign HTTP/1.1\r\nHost: "+u.Host+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	}
	conf := &tls.Config{RootCAs: roots, ServerName: u.Hostname()}
	addr := net.JoinHostPort("127.0.0.1", u.Port())
	// One keep-alive connection per client, opened and used once before
	// the clock starts: the handshakes are not measured.
	conns := make([]*conn, clients)
	for i := range conns {
		c, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer c.Close()
		conns[i] = &conn{c: c, r: bufio.NewReader(c)}
		if _, err := conns[i].do([]byte("GET /health HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n"), http.StatusOK, nil); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}

	var (
		mu    sync.Mutex
		next  int
		ok    int
		fails int
		first string
		lat   []time.Duration
	)
	deadline := time.Now().Add(duration)
	c0, err := cpu(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= count {
					return
				}
				start := time.Now()
				_, err := c.do(reqs[i], http.StatusCreated, []byte(`"crt"`))
				el := time.Since(start)
				mu.Lock()
				if err == nil {
					ok++
					lat = append(lat, el)
				} else {
					fails++
					if first == "" {
						first = err.Error()
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	c1, err := cpu(pid)
	if err != nil {
		return err
	}
	c := c1 - c0
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	per := 0.0
	if c > 0 {
		per = float64(ok) / c.Seconds()
	}
	fmt.Printf("step-ca issued %d errors %d in %.2fs, server CPU %.2fs (%.0f%% of one core), %.0f/s, latency p50 %.1fms p99 %.1fms, per server CPU-second %.0f\n",
		ok, fails, el.Seconds(), c.Seconds(), 100*c.Seconds()/el.Seconds(), float64(ok)/el.Seconds(), q(0.5), q(0.99), per)
	if first != "" {
		fmt.Println("first error:", first)
	}
	return nil
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

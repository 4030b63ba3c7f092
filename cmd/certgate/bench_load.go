package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/certgate/internal/loadgen"
)

// pinVerifier verifies the server's chain on the first handshake and then
// accepts the same leaf without a chain build: the load generator's CPU
// goes to the handshake, not to re-checking a chain it already checked.
type pinVerifier struct {
	roots  *x509.CertPool
	name   string
	pinned atomic.Pointer[[]byte]
}

func (p *pinVerifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("bench: server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if pin := p.pinned.Load(); pin != nil && bytes.Equal(*pin, leaf.Raw) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, DNSName: p.name}); err != nil {
		return fmt.Errorf("bench: server certificate: %w", err)
	}
	raw := leaf.Raw
	p.pinned.Store(&raw)
	return nil
}

// benchTargetRun warms the target up (not measured), then measures one
// mode against it. A resumed run keeps the sessions of its warm-up.
func benchTargetRun(ctx context.Context, t benchTarget, mode string, o benchOptions, cert tls.Certificate, roots *x509.CertPool) benchResult {
	tc := &tls.Config{
		Certificates:     []tls.Certificate{cert},
		NextProtos:       []string{"http/1.1"},
		CurvePreferences: []tls.CurveID{benchCurves[o.curve]},
		MinVersion:       tls.VersionTLS12,
		// Verified by pinVerifier when there are roots; see the command's help.
		InsecureSkipVerify: true,
	}
	if roots != nil {
		tc.VerifyConnection = (&pinVerifier{roots: roots, name: o.serverName}).verify
	}
	if mode == "resumed" {
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(o.concurrency * 2)
	}
	if o.warmup > 0 {
		benchRun(ctx, t, mode, o, o.warmup, tc)
	}
	return benchRun(ctx, t, mode, o, o.duration, tc)
}

// benchRun drives one mode against one target for d. Dials do not take
// ctx, so the end of the run is not counted as a dial error.
func benchRun(ctx context.Context, t benchTarget, mode string, o benchOptions, d time.Duration, tc *tls.Config) benchResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ops, errs, notResumed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var params string
	var lat []time.Duration
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	note := func(cs tls.ConnectionState) {
		mu.Lock()
		if params == "" {
			params = tlsParams(cs)
		}
		mu.Unlock()
	}
	closeReq := []byte("GET " + o.path + " HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	keepReq := []byte("GET " + o.path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	var cpu0 time.Duration
	if t.pid != 0 {
		cpu0, _ = loadgen.ProcessCPU(t.pid)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
			if mode == "keepalive" {
				for ctx.Err() == nil {
					c, err := d.DialContext(context.Background(), "tcp", t.addr)
					if err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						continue
					}
					note(c.(*tls.Conn).ConnectionState())
					br := bufio.NewReader(c)
					for ctx.Err() == nil {
						t0 := time.Now()
						if err := exchange(c, br, keepReq); err != nil {
							if ctx.Err() == nil {
								fail(err)
							}
							break
						}
						local = append(local, time.Since(t0))
						ops.Add(1)
					}
					c.Close()
				}
				return
			}
			buf := make([]byte, 16)
			for ctx.Err() == nil {
				t0 := time.Now()
				c, err := d.DialContext(context.Background(), "tcp", t.addr)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				err = exchangeClose(c, buf, closeReq)
				cs := c.(*tls.Conn).ConnectionState()
				c.Close()
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					continue
				}
				note(cs)
				if mode == "resumed" && !cs.DidResume {
					notResumed.Add(1)
				}
				local = append(local, time.Since(t0))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	r := benchResult{ops: ops.Load(), errs: errs.Load(), notResumed: notResumed.Load(), elapsed: time.Since(start), firstErr: firstErr, params: params}
	if t.pid != 0 {
		if cpu1, err := loadgen.ProcessCPU(t.pid); err == nil {
			r.serverCPU = cpu1 - cpu0
		} else if r.firstErr == nil {
			r.firstErr = err
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// tlsParams names what a connection negotiated: version, key-exchange
// group and the server certificate's key type, e.g.
// TLS1.3/CurveP256/ecdsa-p256.
func tlsParams(cs tls.ConnectionState) string {
	v := strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")
	key := "none"
	if len(cs.PeerCertificates) > 0 {
		key = keyName(cs.PeerCertificates[0])
	}
	return v + "/" + cs.CurveID.String() + "/" + key
}

// exchange writes one request on a keep-alive connection and reads the
// whole response. Any complete response below 500 counts: a 403 from a
// route check is as much work for the server as a 200.
func exchange(c net.Conn, br *bufio.Reader, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	status, err := readResponse(br)
	if err != nil {
		return err
	}
	if status >= 500 {
		return fmt.Errorf("status %d", status)
	}
	return nil
}

// readResponse reads one response to a GET, its head and its whole body
// (by Content-Length or chunked framing), and returns its status. It is
// the load generator's cheap stand-in for http.ReadResponse: no header
// map, no allocation for a response with a length.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("reading the status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 200 {
		return 0, fmt.Errorf("unexpected status line: %q", line)
	}
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("reading the response head: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("malformed header line: %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, fmt.Errorf("bad Content-Length: %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	switch {
	case status == 204 || status == 304:
	case chunked:
		if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
			return 0, fmt.Errorf("reading the chunked body: %w", err)
		}
		// The chunked reader stops after the last chunk: the trailer
		// section, up to its empty line, is left.
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, fmt.Errorf("reading the trailer: %w", err)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return 0, fmt.Errorf("reading the body: %w", err)
		}
	default:
		return 0, errors.New("a keep-alive response without Content-Length or chunked framing")
	}
	return status, nil
}

// exchangeClose writes a Connection: close request and reads to the end
// of the connection, checking only the status line: the cheapest complete
// exchange for the load generator.
func exchangeClose(c net.Conn, buf, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadAtLeast(c, buf, 12); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 ")) || buf[9] < '1' || buf[9] > '5' {
		return fmt.Errorf("not an HTTP/1.1 response: %q", buf)
	}
	if buf[9] == '5' {
		return fmt.Errorf("status %s", buf[9:12])
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	return nil
}

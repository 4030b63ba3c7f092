// Package syslogtest is a syslog collector for tests: it accepts RFC 6587
// octet-counted RFC 5424 messages over TCP or TLS on 127.0.0.1, keeps every
// message it read, and can be stopped and started again on the same port
// to play an outage. Tests only.
package syslogtest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/syslog"
)

// Receiver is a running (or stopped) collector.
type Receiver struct {
	t    testing.TB
	tls  *tls.Config
	Addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	msgs  []syslog.Message
	bad   []error
	wg    sync.WaitGroup
}

// Start listens on 127.0.0.1 (TLS if tc is set) and stops at the test's end.
func Start(t testing.TB, tc *tls.Config) *Receiver {
	r := &Receiver{t: t, tls: tc, conns: map[net.Conn]bool{}}
	r.listen("127.0.0.1:0")
	t.Cleanup(r.Stop)
	return r
}

func (r *Receiver) listen(addr string) {
	var ln net.Listener
	var err error
	for range 50 { // the old port may linger briefly after Stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("syslogtest: %v", err)
	}
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	r.mu.Lock()
	r.ln, r.Addr = ln, ln.Addr().String()
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.ln != ln { // stopped meanwhile
				r.mu.Unlock()
				c.Close()
				continue
			}
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go r.serve(c)
		}
	}()
}

func (r *Receiver) serve(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		b, err := syslog.ReadFrame(br, 1<<20)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				r.mu.Lock()
				r.bad = append(r.bad, err)
				r.mu.Unlock()
			}
			return
		}
		m, err := syslog.Parse(b)
		r.mu.Lock()
		if err != nil {
			r.bad = append(r.bad, err)
		} else {
			r.msgs = append(r.msgs, m)
		}
		r.mu.Unlock()
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Stop closes the listener and, gracefully, every connection: it closes
// its write side (the sender sees the collector go) and reads what the
// sender had already written until the sender closes, as a collector that
// shuts down cleanly does. It returns when every connection is done.
func (r *Receiver) Stop() {
	r.mu.Lock()
	ln := r.ln
	r.ln = nil
	if ln != nil {
		ln.Close()
	}
	for c := range r.conns {
		switch c := c.(type) {
		case *tls.Conn:
			c.CloseWrite()
		case *net.TCPConn:
			c.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Restart listens again on the same address.
func (r *Receiver) Restart() { r.listen(r.Addr) }

// Messages returns what was received so far.
func (r *Receiver) Messages() []syslog.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]syslog.Message(nil), r.msgs...)
}

// Count is len(Messages()).
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Errors returns the frames or messages it could not read.
func (r *Receiver) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.bad...)
}

// WaitCount waits until n messages arrived or d passed, and returns the
// count.
func (r *Receiver) WaitCount(n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		c := r.Count()
		if c >= n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

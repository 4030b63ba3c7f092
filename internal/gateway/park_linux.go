//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// canPark: this build has a poller; a woken connection that sends no
// request within parkAfter parks again instead of keeping its goroutine.
const canPark = true

// poller watches parked connections (park.go) with one epoll instance,
// level-triggered and one-shot, from one goroutine. The runtime's own
// netpoller cannot be asked to do this: it wakes goroutines, and the
// point is to have none. An event's data is the connection's slot and the
// slot's generation, so that an event that was already on its way when
// its slot went to another connection (possibly of the same, reused, file
// descriptor) is recognised and dropped.
type poller struct {
	g            *Gateway
	epfd         int
	wakeR, wakeW int // a pipe: a byte written ends the wait at once

	mu     sync.Mutex
	closed bool
	d      deadlineHeap
	free   []int32 // free slots
}

// wakeData marks the pipe's event.
const wakeData = -1

func newPoller(g *Gateway) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll: %w", err)
	}
	var pipe [2]int
	if err := syscall.Pipe2(pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("gateway: poller pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeData}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(pipe[0])
		syscall.Close(pipe[1])
		return nil, fmt.Errorf("gateway: epoll: %w", err)
	}
	return &poller{g: g, epfd: epfd, wakeR: pipe[0], wakeW: pipe[1]}, nil
}

// park hands t, which the caller owns and is done with, to the poller
// until idleEnd. It reports false when it could not (the gateway is
// closing, the connection was cut meanwhile, no file descriptor): the
// caller still owns it.
func (p *poller) park(t *tracked, serve func(*tracked), idleEnd time.Time) bool {
	if p == nil {
		return false
	}
	sc, ok := t.raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// cut sets closed before it looks for the connection here (unpark):
	// either it finds it parked, or this sees it closed.
	if p.closed || t.closed.Load() {
		return false
	}
	var i int32
	if n := len(p.free); n > 0 {
		i, p.free = p.free[n-1], p.free[:n-1]
	} else {
		p.d.slots = append(p.d.slots, parkedConn{at: -1})
		i = int32(len(p.d.slots) - 1)
	}
	s := &p.d.slots[i]
	s.gen++
	// Level-triggered: bytes that came before the registration (or a
	// record's rest, when crypto/tls holds its beginning) wake it at once.
	// One-shot: one wake per park, however long the goroutine takes.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: i, Pad: int32(s.gen)}
	var ctlErr error
	if err := rc.Control(func(fd uintptr) { ctlErr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil || ctlErr != nil {
		p.free = append(p.free, i)
		return false
	}
	s.t, s.serve, s.rc, s.idleEnd = t, serve, rc, idleEnd
	p.d.push(i)
	t.slot = i + 1
	p.g.metrics.ParkedConnections(1)
	if p.d.h[0] == i {
		// Earlier than the poller's wait: it computes its wait again.
		p.poke()
	}
	return true
}

// take removes slot i's connection from epoll and the poller and returns
// it: the caller owns it from now on. p.mu is held.
func (p *poller) take(i int32) (*tracked, func(*tracked)) {
	s := &p.d.slots[i]
	t, serve := s.t, s.serve
	// Out of epoll before anyone closes it. Control fails only on a
	// closed socket, which the kernel has taken out already.
	s.rc.Control(func(fd uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
	p.d.remove(i)
	s.t, s.serve, s.rc = nil, nil, nil
	p.free = append(p.free, i)
	t.slot = 0
	p.g.metrics.ParkedConnections(-1)
	return t, serve
}

// unpark takes t out of the poller if it is parked, and reports whether
// it was: the caller owns it then.
func (p *poller) unpark(t *tracked) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.slot == 0 {
		return false
	}
	p.take(t.slot - 1)
	return true
}

// count returns the number of parked connections.
func (p *poller) count() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.d.h)
}

// shutdown stops the poller and returns the connections it held, which
// the caller owns. A park after it fails.
func (p *poller) shutdown() []*tracked {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	out := make([]*tracked, 0, len(p.d.h))
	for len(p.d.h) > 0 {
		t, _ := p.take(p.d.h[len(p.d.h)-1])
		out = append(out, t)
	}
	p.poke()
	return out
}

// poke ends the poller's current wait.
func (p *poller) poke() {
	syscall.Write(p.wakeW, []byte{0}) // EAGAIN: a byte is there already
}

// run is the poller's goroutine, until shutdown; it closes the poller's
// file descriptors when it ends.
func (p *poller) run() {
	defer p.g.wg.Done()
	defer func() {
		syscall.Close(p.epfd)
		syscall.Close(p.wakeR)
		syscall.Close(p.wakeW)
	}()
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, p.waitMillis())
		if err != nil && !errors.Is(err, syscall.EINTR) {
			// Not expected (EBADF, EFAULT, EINVAL are bugs): logged, and
			// retried without spinning.
			p.g.log.Error("epoll_wait failed", "error", err)
			time.Sleep(100 * time.Millisecond)
		}
		if !p.dispatch(events[:max(n, 0)]) {
			return
		}
	}
}

// waitMillis is how long the poller may wait: until the earliest idle
// timeout, or without end.
func (p *poller) waitMillis() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.d.h) == 0 {
		return -1
	}
	d := time.Until(p.d.slots[p.d.h[0]].idleEnd)
	if d <= 0 {
		return 0
	}
	return int(min((d+time.Millisecond-1)/time.Millisecond, 1<<30))
}

// dispatch serves woken connections on new goroutines and closes those
// past their idle timeout. It reports false once the poller is shut down.
func (p *poller) dispatch(events []syscall.EpollEvent) (more bool) {
	more = true
	defer p.g.recovered(panicPoller)
	wake, expired, open := p.collect(events)
	if !open {
		return false
	}
	for _, w := range wake {
		p.g.goServe(w.t.raw, w.t, w.serve, false)
	}
	if len(expired) > 0 {
		// Closing sends close_notify, a write that could wait (for up to
		// crypto/tls's 5 s) on a client that reads nothing: not here.
		p.g.wg.Add(1)
		go func() {
			defer p.g.wg.Done()
			defer p.g.recovered(panicConnection)
			for _, t := range expired {
				p.g.untrack(t)
			}
		}()
	}
	return true
}

// woken is a connection taken out of the poller to be served.
type woken struct {
	t     *tracked
	serve func(*tracked)
}

// collect takes out of the poller, under its lock, the connections whose
// events arrived and those past their idle timeout; open is false once
// the poller is shut down. The lock is released by a defer, so that a
// panic here (recovered by dispatch) cannot leave it held and stop every
// park, wake and cut after it.
func (p *poller) collect(events []syscall.EpollEvent) (wake []woken, expired []*tracked, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, false
	}
	for _, ev := range events {
		if ev.Fd == wakeData {
			var b [64]byte
			for {
				if n, _ := syscall.Read(p.wakeR, b[:]); n <= 0 {
					break
				}
			}
			continue
		}
		i := ev.Fd
		if i < 0 || int(i) >= len(p.d.slots) || p.d.slots[i].t == nil || p.d.slots[i].gen != uint32(ev.Pad) {
			continue // the slot's connection was taken since
		}
		t, serve := p.take(i)
		wake = append(wake, woken{t, serve})
	}
	now := time.Now()
	for len(p.d.h) > 0 && !p.d.slots[p.d.h[0]].idleEnd.After(now) {
		t, _ := p.take(p.d.h[0])
		expired = append(expired, t)
	}
	return wake, expired, true
}

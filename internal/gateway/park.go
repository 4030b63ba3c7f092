package gateway

import (
	"syscall"
	"time"
)

// Parking: an HTTP/1.1 connection that has waited parkAfter for its next
// request gives up its goroutine. Its socket is watched by the gateway's
// one poller (park_linux.go: an epoll instance and one goroutine), which
// starts a new goroutine to serve it when the client sends something or
// closes, and closes it itself at the idle timeout. A goroutine is at
// least 4 KiB of stack that the heap goal counts again (docs/benchmarks.md,
// idle connections); a parked connection holds ~80 bytes of the poller's.
//
// Exactly one party owns a connection at any time: the goroutine serving
// it, or the poller while it is parked. Whoever takes a parked connection
// out of the poller (under the poller's lock: a wake, the idle timeout, a
// cut, the gateway's Close) owns it from then on; that is what keeps the
// connection from being untracked or counted twice.

// untrack forgets a connection the caller owns and closes it: what the
// goroutine serving it does when it is done with it.
func (g *Gateway) untrack(t *tracked) {
	g.tracker.remove(t)
	t.close()
	g.metrics.ActiveConnections(-1)
}

// parkedConn is the poller's state of one parked connection.
type parkedConn struct {
	t       *tracked
	serve   func(*tracked)
	rc      syscall.RawConn // the socket, for epoll_ctl
	idleEnd time.Time       // when the poller closes it
	gen     uint32          // told apart from the slot's earlier connections
	at      int32           // index in the poller's deadline heap, -1: free slot
}

// deadlineHeap orders the poller's slots by idleEnd, earliest first; each
// slot knows its index in it (at), so that a wake removes it in O(log n).
type deadlineHeap struct {
	slots []parkedConn
	h     []int32
}

func (d *deadlineHeap) less(i, j int) bool {
	return d.slots[d.h[i]].idleEnd.Before(d.slots[d.h[j]].idleEnd)
}

func (d *deadlineHeap) swap(i, j int) {
	d.h[i], d.h[j] = d.h[j], d.h[i]
	d.slots[d.h[i]].at = int32(i)
	d.slots[d.h[j]].at = int32(j)
}

func (d *deadlineHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !d.less(i, p) {
			return
		}
		d.swap(i, p)
		i = p
	}
}

func (d *deadlineHeap) down(i int) {
	for {
		l, s := 2*i+1, i
		if l < len(d.h) && d.less(l, s) {
			s = l
		}
		if r := l + 1; r < len(d.h) && d.less(r, s) {
			s = r
		}
		if s == i {
			return
		}
		d.swap(i, s)
		i = s
	}
}

func (d *deadlineHeap) push(slot int32) {
	d.h = append(d.h, slot)
	d.slots[slot].at = int32(len(d.h) - 1)
	d.up(len(d.h) - 1)
}

// remove takes slot out of the heap (not out of slots).
func (d *deadlineHeap) remove(slot int32) {
	i := int(d.slots[slot].at)
	last := len(d.h) - 1
	if i != last {
		d.swap(i, last)
	}
	d.h = d.h[:last]
	d.slots[slot].at = -1
	if i != last {
		d.down(i)
		d.up(i)
	}
}

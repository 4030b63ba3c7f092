package accesslog

import "sync"

// queue is one output's bounded line queue: the queued lines back to back
// in one buffer, which the output's goroutine swaps for its spare one
// (take), so a line costs one copy and, once both buffers have grown, no
// allocation; and no memory is held per queue slot. It holds at most max
// lines. Producers never wait under OverflowDrop; under OverflowBlock they
// wait for the output's goroutine.
type queue struct {
	mu     sync.Mutex
	room   sync.Cond
	buf    []byte
	n      int // lines in buf
	max    int
	block  bool
	closed bool
	wake   chan struct{}
}

func newQueue(n int, block bool) *queue {
	q := &queue{max: n, block: block, wake: make(chan struct{}, 1)}
	q.room.L = &q.mu
	return q
}

// put queues line (ending in '\n'), or reports false when the queue is
// full (OverflowDrop) or closed.
func (q *queue) put(line []byte) bool {
	q.mu.Lock()
	for q.block && q.n == q.max && !q.closed {
		q.room.Wait()
	}
	if q.n == q.max || q.closed {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, line...)
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// maxSpare bounds the buffer an output keeps between batches: one that grew
// past it in a burst is dropped, so that a burst's memory is given back.
const maxSpare = 1 << 20

// take returns every queued line and keeps spare (emptied) as the queue's
// buffer; with nothing queued it returns spare[:0].
func (q *queue) take(spare []byte) []byte {
	if cap(spare) > maxSpare {
		spare = nil
	}
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return spare[:0]
	}
	out := q.buf
	q.buf, q.n = spare[:0], 0
	q.room.Broadcast()
	q.mu.Unlock()
	return out
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.room.Broadcast()
	q.mu.Unlock()
}

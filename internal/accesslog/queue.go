package accesslog

import "sync"

// queue is one output's bounded line queue: a ring of reused slots, so a
// line costs a copy and no allocation. Producers never wait under
// OverflowDrop; under OverflowBlock they wait for the output's goroutine.
type queue struct {
	mu     sync.Mutex
	room   sync.Cond
	ring   [][]byte
	head   int
	n      int
	block  bool
	closed bool
	wake   chan struct{}
}

func newQueue(n int, block bool) *queue {
	q := &queue{ring: make([][]byte, n), block: block, wake: make(chan struct{}, 1)}
	q.room.L = &q.mu
	return q
}

// put copies line in; false means it was dropped (full, or closed).
func (q *queue) put(line []byte) bool {
	q.mu.Lock()
	for q.block && q.n == len(q.ring) && !q.closed {
		q.room.Wait()
	}
	if q.n == len(q.ring) || q.closed {
		q.mu.Unlock()
		return false
	}
	i := (q.head + q.n) % len(q.ring)
	q.ring[i] = append(q.ring[i][:0], line...)
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// take appends queued lines to b, up to about limit bytes.
func (q *queue) take(b []byte, limit int) []byte {
	q.mu.Lock()
	k := 0
	for q.n > 0 && (k == 0 || len(b)+len(q.ring[q.head]) <= limit) {
		b = append(b, q.ring[q.head]...)
		if cap(q.ring[q.head]) > 16<<10 {
			q.ring[q.head] = nil
		}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		k++
	}
	if k > 0 {
		q.room.Broadcast()
	}
	q.mu.Unlock()
	return b
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.room.Broadcast()
	q.mu.Unlock()
}

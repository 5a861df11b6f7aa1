package cdc

import (
	"context"
	"sync"

	"github.com/deskhook/deskhook/change"
)

// queue holds decoded batches between the goroutine that owns the
// replication connection and the one that calls the Handler. It is bounded
// by the batches' estimated memory, so a consumer that blocks makes the
// reader stop reading from the server rather than grow without limit. The
// batches the Handler holds count until it is done with them (release), so
// that taking many at once does not let the reader decode as much again.
// A batch larger than the bound is taken only when nothing else is held,
// queued or handled: one batch at a time, however large.
type queue struct {
	mu      sync.Mutex
	items   []queued
	head    int
	bytes   int // queued and in the Handler's hands
	limit   int
	ready   chan struct{} // signalled when an item is added
	hasRoom chan struct{} // signalled when room is made
}

type queued struct {
	batch *change.Batch
	bytes int
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1), hasRoom: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// tryPush adds b unless the queue is full.
func (q *queue) tryPush(b *change.Batch, bytes int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes > 0 && q.bytes+bytes > q.limit {
		return false
	}
	q.items = append(q.items, queued{b, bytes})
	q.bytes += bytes
	signal(q.ready)
	return true
}

// pop waits for a batch, then takes it and up to most-1 more that are
// queued, appending them to dst. Their bytes stay counted until release.
func (q *queue) pop(ctx context.Context, dst []*change.Batch, most int) ([]*change.Batch, int, error) {
	for {
		q.mu.Lock()
		if len(q.items) > q.head {
			bytes := 0
			for n := 0; n < most && len(q.items) > q.head; n++ {
				it := q.items[q.head]
				q.items[q.head] = queued{}
				q.head++
				dst = append(dst, it.batch)
				bytes += it.bytes
			}
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head*2 > len(q.items) {
				q.items, q.head = append(q.items[:0], q.items[q.head:]...), 0
			}
			q.mu.Unlock()
			return dst, bytes, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return dst, 0, ctx.Err()
		}
	}
}

// release says the Handler is done with batches of this many bytes.
func (q *queue) release(bytes int) {
	q.mu.Lock()
	q.bytes -= bytes
	q.mu.Unlock()
	signal(q.hasRoom)
}

// size returns the number of batches queued and the estimated bytes of
// those and of the ones in the Handler's hands.
func (q *queue) size() (n, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.bytes
}

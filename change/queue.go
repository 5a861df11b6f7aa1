package change

import (
	"context"
	"sync"
)

// Queue holds decoded batches between a reader's goroutine that owns the
// replication connection and the one that calls the Handler (Feed). It is
// bounded by the batches' estimated memory, so a consumer that blocks makes
// the reader stop reading from the server rather than grow without limit.
// The batches the Handler holds count until it is done with them, so that
// taking many at once does not let the reader decode as much again. A batch
// larger than the bound is taken only when nothing else is held, queued or
// handled: one batch at a time, however large.
type Queue struct {
	mu      sync.Mutex
	items   []queued
	head    int
	bytes   int // queued and in the Handler's hands
	limit   int
	ready   chan struct{} // signalled when an item is added
	hasRoom chan struct{} // signalled when room is made
}

type queued struct {
	batch *Batch
	bytes int
}

// NewQueue returns a queue bounded by limit estimated bytes.
func NewQueue(limit int) *Queue {
	return &Queue{limit: limit, ready: make(chan struct{}, 1), hasRoom: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// TryPush adds b, whose estimated memory is bytes, unless the queue is
// full.
func (q *Queue) TryPush(b *Batch, bytes int) bool {
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

// HasRoom is signalled (without a guarantee that a given batch now fits)
// whenever the Handler is done with some batches: a pusher that found the
// queue full waits on it and tries again.
func (q *Queue) HasRoom() <-chan struct{} { return q.hasRoom }

// Pop waits for a batch, then takes it and up to most-1 more that are
// queued, appending them to dst. Their bytes stay counted until Release.
func (q *Queue) Pop(ctx context.Context, dst []*Batch, most int) ([]*Batch, int, error) {
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

// Release says the Handler is done with batches of this many bytes.
func (q *Queue) Release(bytes int) {
	q.mu.Lock()
	q.bytes -= bytes
	q.mu.Unlock()
	signal(q.hasRoom)
}

// Size returns the number of batches queued and the estimated bytes of
// those and of the ones in the Handler's hands.
func (q *Queue) Size() (n, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.bytes
}

// Feed hands the queued batches to h until ctx ends (nil) or h fails (its
// error): all queued batches at once, up to MaxHandleBatches, when h is a
// BatchHandler, else one by one. It is the only caller of h, so the
// goroutine that fills the queue never waits for the consumer.
func (q *Queue) Feed(ctx context.Context, h Handler) error {
	bh, many := h.(BatchHandler)
	most := 1
	if many {
		most = MaxHandleBatches
	}
	var bs []*Batch
	for {
		var bytes int
		var err error
		bs, bytes, err = q.Pop(ctx, bs[:0], most)
		if err != nil {
			return nil
		}
		if many {
			err = bh.HandleBatches(ctx, bs)
		} else {
			err = h.Handle(ctx, bs[0])
		}
		clear(bs) // the handler owns them now
		q.Release(bytes)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// FeedInBackground runs Feed(ctx, h) in a goroutine of its own, as both
// readers do: the goroutine that reads from the server never waits for
// the consumer. A failing h cancels runCtx, the context to read under;
// done closes when Feed has returned; stop cancels runCtx, waits for Feed
// and returns h's error, if it failed.
func (q *Queue) FeedInBackground(ctx context.Context, h Handler) (runCtx context.Context, done <-chan struct{}, stop func() error) {
	runCtx, cancel := context.WithCancelCause(ctx)
	fed := make(chan struct{})
	var handlerErr error
	go func() {
		defer close(fed)
		if err := q.Feed(runCtx, h); err != nil {
			handlerErr = err
			cancel(err)
		}
	}()
	return runCtx, fed, func() error {
		cancel(nil)
		<-fed
		return handlerErr
	}
}

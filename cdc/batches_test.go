package cdc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// batchRecorder is a BatchHandler: it records each call's size and hands
// every batch to the recorder.
type batchRecorder struct {
	*recorder
	mu      sync.Mutex
	calls   []int
	singles int // Handle calls
	first   chan struct{}
	hold    chan struct{}
}

func (h *batchRecorder) Handle(ctx context.Context, b *change.Batch) error {
	h.mu.Lock()
	h.singles++
	h.mu.Unlock()
	return h.recorder.Handle(ctx, b)
}

func (h *batchRecorder) HandleBatches(ctx context.Context, bs []*change.Batch) error {
	h.mu.Lock()
	first := len(h.calls) == 0
	h.calls = append(h.calls, len(bs))
	h.mu.Unlock()
	if first {
		close(h.first)
		select {
		case <-h.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, b := range bs {
		if err := h.recorder.Handle(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// TestBatchHandlerTakesWhatIsQueued: a BatchHandler gets every transaction
// queued while it was busy in one call, in commit order, none twice; its
// batches count against queue_bytes until it returns.
func TestBatchHandlerTakesWhatIsQueued(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	h := &batchRecorder{recorder: newRecorder(true), first: make(chan struct{}), hold: make(chan struct{})}
	run := startReader(t, f.cfg, h, ReaderOptions{})
	h.reader = run.reader // for autoAck; read only after the first write below
	run.waitConnected(t)
	ctx := testCtx(t, time.Minute)
	const txns = 20
	for i := range txns {
		if _, err := f.hd.CreateTicket(ctx, testenv.NewTicket{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-h.first // the handler holds the first; the others queue
		}
	}
	q := run.reader.queue.Load()
	waitFor(t, 30*time.Second, "the transactions to queue", func() bool {
		n, bytes := q.Size()
		return n == txns-1 && bytes > 0
	})
	close(h.hold)
	waitFor(t, 30*time.Second, "every transaction", func() bool { return h.txns() == txns })
	var last change.Position
	for _, b := range h.snapshot() {
		if b.Pos <= last {
			t.Fatalf("transaction %s after %s", b.Pos, last)
		}
		last = b.Pos
	}
	h.mu.Lock()
	calls, singles := append([]int(nil), h.calls...), h.singles
	h.mu.Unlock()
	if len(calls) != 2 || calls[0] != 1 || calls[1] != txns-1 || singles != 0 {
		t.Errorf("calls of %v batches, %d Handle calls; want [1 %d], none", calls, singles, txns-1)
	}
	if n, bytes := q.Size(); n != 0 || bytes != 0 {
		t.Errorf("after handling: %d batches, %d bytes counted", n, bytes)
	}
}

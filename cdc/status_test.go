package cdc

import (
	"context"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

func TestProgressConfirmsOnlyAcknowledged(t *testing.T) {
	now := time.Now()
	type step struct {
		do        func(p *progress)
		wantFlush uint64
	}
	handed := func(pos change.Position, end uint64) func(*progress) {
		return func(p *progress) { p.handed(pendingTxn{pos: pos, end: end, commit: now}) }
	}
	ack := func(pos change.Position) func(*progress) { return func(p *progress) { p.ack(pos) } }
	serverEnd := func(l uint64) func(*progress) { return func(p *progress) { p.sawWAL(l, l) } }
	open := func(o bool) func(*progress) { return func(p *progress) { p.setOpen(o, now) } }
	tests := []struct {
		name  string
		steps []step
	}{
		{"slot position is the floor", []step{
			{func(p *progress) { p.baseline(50) }, 50},
		}},
		{"acknowledged transaction confirmed at its commit end", []step{
			{func(p *progress) { p.baseline(50) }, 50},
			{open(true), 50},
			{handed(100, 110), 50},
			{open(false), 50},
			{ack(100), 110},
		}},
		{"acknowledgement racing ahead of the hand-over record", []step{
			{ack(100), 100},
			{handed(100, 110), 110},
		}},
		{"never beyond a transaction not acknowledged", []step{
			{handed(100, 110), 0},
			{handed(200, 210), 0},
			{serverEnd(500), 0},
			{ack(100), 110},
			{ack(150), 150},
			{ack(200), 500}, // nothing pending: the server's WAL end
		}},
		{"idle follows the server's WAL end", []step{
			{func(p *progress) { p.baseline(50) }, 50},
			{serverEnd(80), 80},
			{serverEnd(90), 90},
		}},
		{"an open transaction holds the WAL end back", []step{
			{func(p *progress) { p.baseline(50) }, 50},
			{open(true), 50},
			{serverEnd(90), 50},
			{open(false), 90}, // e.g. an empty transaction
		}},
		{"an old acknowledgement does not move back", []step{
			{handed(100, 110), 0},
			{handed(200, 210), 0},
			{ack(200), 210},
			{ack(100), 210},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProgress()
			for i, s := range tc.steps {
				s.do(p)
				if _, flush := p.positions(); flush != s.wantFlush {
					t.Fatalf("step %d: flush = %d, want %d", i, flush, s.wantFlush)
				}
			}
		})
	}
}

func TestProgressLag(t *testing.T) {
	p := newProgress()
	now := time.Now()
	if lag := p.lagSeconds(now); lag != 0 {
		t.Errorf("idle lag = %g", lag)
	}
	p.setOpen(true, now.Add(-3*time.Second))
	if lag := p.lagSeconds(now); lag != 3 {
		t.Errorf("open transaction lag = %g, want 3", lag)
	}
	p.handed(pendingTxn{pos: 10, end: 11, commit: now.Add(-5 * time.Second)})
	p.setOpen(false, time.Time{})
	if lag := p.lagSeconds(now); lag != 5 {
		t.Errorf("unacknowledged lag = %g, want 5", lag)
	}
	p.ack(10)
	if lag := p.lagSeconds(now); lag != 0 {
		t.Errorf("caught-up lag = %g", lag)
	}
}

func TestQueueBoundsMemory(t *testing.T) {
	q := change.NewQueue(100)
	b := func(i int) *change.Batch { return &change.Batch{Seq: i} }
	if !q.TryPush(b(0), 500) {
		t.Fatal("an empty queue must take one batch, however large")
	}
	if q.TryPush(b(1), 1) {
		t.Fatal("full queue took another batch")
	}
	ctx := context.Background()
	got, n, err := q.Pop(ctx, nil, 10)
	if err != nil || len(got) != 1 || got[0].Seq != 0 || n != 500 {
		t.Fatalf("popped %v (%d bytes), %v", got, n, err)
	}
	// Popped bytes count until the handler releases them: while it holds a
	// batch over the bound, nothing more is taken, however small (the
	// reader holds one decoded batch meanwhile, not two).
	if _, bytes := q.Size(); bytes != 500 {
		t.Fatalf("bytes after pop = %d, want 500 (in the handler's hands)", bytes)
	}
	if q.TryPush(b(1), 25) {
		t.Fatal("while the handler holds a batch over the bound: a batch was taken")
	}
	q.Release(n)
	select {
	case <-q.HasRoom():
	default:
		t.Fatal("release did not signal room")
	}
	for i := 1; i <= 4; i++ {
		if !q.TryPush(b(i), 25) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.TryPush(b(5), 1) {
		t.Fatal("queue took more than its limit")
	}
	// pop takes up to max of what is queued, FIFO.
	got, n, _ = q.Pop(ctx, got[:0], 3)
	if len(got) != 3 || n != 75 || got[0].Seq != 1 || got[2].Seq != 3 {
		t.Fatalf("popped %d batches (%d bytes), first seq %d", len(got), n, got[0].Seq)
	}
	q.Release(n)
	got, n, _ = q.Pop(ctx, got[:0], 3)
	if len(got) != 1 || got[0].Seq != 4 || n != 25 {
		t.Fatalf("popped %d batches, want the last one", len(got))
	}
	// A batch over the bound waits while anything is held, and is taken
	// alone once nothing is.
	if q.TryPush(b(5), 500) {
		t.Fatal("a batch over the bound was taken while the handler holds one")
	}
	q.Release(n)
	if !q.TryPush(b(5), 500) {
		t.Fatal("a batch over the bound was refused with nothing held")
	}
	got, n, _ = q.Pop(ctx, got[:0], 3)
	if len(got) != 1 || got[0].Seq != 5 || n != 500 {
		t.Fatalf("popped %d batches, want the large one", len(got))
	}
	q.Release(n)
	if k, bytes := q.Size(); k != 0 || bytes != 0 {
		t.Fatalf("drained queue: %d batches, %d bytes", k, bytes)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := q.Pop(cctx, nil, 1); err == nil {
		t.Fatal("pop on an empty queue ignored its context")
	}
}

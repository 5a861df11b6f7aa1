package change

import (
	"context"
	"errors"
	"testing"
	"time"
)

type failingHandler struct{ err error }

func (h failingHandler) Handle(context.Context, *Batch) error { return h.err }

// TestFeedInBackground: a failing handler cancels the context the reader
// reads under, and stop returns its error, as often as it is called; a
// handler that does not fail gives nil.
func TestFeedInBackground(t *testing.T) {
	boom := errors.New("boom")
	q := NewQueue(1 << 20)
	runCtx, done, stop := q.FeedInBackground(context.Background(), failingHandler{boom})
	if !q.TryPush(&Batch{Pos: 1, Last: true}, 100) {
		t.Fatal("the queue refused a batch")
	}
	select {
	case <-runCtx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the handler's failure did not cancel the reader's context")
	}
	<-done
	if err := stop(); !errors.Is(err, boom) || !errors.Is(context.Cause(runCtx), boom) {
		t.Errorf("stop: %v, cause %v; want the handler's error", err, context.Cause(runCtx))
	}
	if err := stop(); !errors.Is(err, boom) {
		t.Errorf("stop again: %v", err)
	}

	runCtx, _, stop = NewQueue(1<<20).FeedInBackground(context.Background(), failingHandler{})
	if err := stop(); err != nil || runCtx.Err() == nil {
		t.Errorf("stop without a failure: %v, context %v", err, runCtx.Err())
	}
}

package outbox

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSubscriptionChangeDoesNotTrapCallers: a subscription change waits for
// its commit. If the committer hangs (a disk that does not answer), a
// caller whose ctx ends must get its error back instead of waiting with it
// (shutdown would hang), appends must not wait for the change, and the
// change must still take effect, in order, once the committer answers.
func TestSubscriptionChangeDoesNotTrapCallers(t *testing.T) {
	var a, b notices
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all, Notify: a.notify})
	release := blockCommitter(t, o)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := o.SetSubscriptions(ctx, []Subscription{
		{Name: "a", Wants: all, Notify: a.notify}, {Name: "b", Wants: all, Notify: b.notify}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetSubscriptions with the committer stuck: %v, want the deadline", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := o.Append(ctx2, 7, true, txn(7, 2)); err != nil {
		t.Fatalf("Append behind the stuck change: %v, want it queued", err)
	}

	release()
	mustFlush(t, o)
	if got := b.take(); len(got) != 1 || got[0].To != 7 {
		t.Errorf("endpoint b after the change was applied: notices %+v, want one up to 7", got)
	}
	if _, err := o.Endpoint("b"); err != nil {
		t.Errorf("endpoint b was not added: %v", err)
	}
	page, err := o.Pending("b", PendingQuery{Max: 10})
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].Event.Pos != 7 {
		t.Errorf("b's queue: %+v %v, want the one event appended after the change", page, err)
	}
}

package outbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// blockCommitter runs an operator request that holds the committer until
// the returned function is called.
func blockCommitter(t *testing.T, o *Outbox) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- o.do(context.Background(), func(*group) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("blocking request: %v", err)
		}
	}
}

// TestEarlyNoticeDoesNotWaitForTheCommitter: the early notice comes from
// Append, while the committer is still busy with what was queued before
// (a commit and its fsyncs, here an operator request that does not end).
func TestEarlyNoticeDoesNotWaitForTheCommitter(t *testing.T) {
	var seen notices
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	release := blockCommitter(t, o)
	mustAppend(t, o, 5, true, txn(5, 1, 2))
	got := seen.take()
	if len(got) != 1 || got[0].Committed || got[0].From != 0 || got[0].To != 5 || len(got[0].Events) != 2 {
		t.Errorf("notices while the committer is busy: %+v, want the early notice of 0/5 with its 2 events", got)
	}
	release()
	mustFlush(t, o)
	got = seen.take()
	if len(got) != 1 || !got[0].Committed || got[0].To != 5 {
		t.Errorf("notices after the commit: %+v, want the committed notice of 0/5", got)
	}
}

// TestResultBeforeItsAppendIsWritten: a delivery made from an early notice
// can be recorded before the committer has written the event, and taken by
// a commit before the one that writes it (here the results are committed
// ahead of a barrier queued before the append). The result must wait for
// the event, not be dropped as stale (the entry would stay pending: counted
// in the queue's depth, and sent again after a restart).
func TestResultBeforeItsAppendIsWritten(t *testing.T) {
	var seen notices
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	release := blockCommitter(t, o)
	flushed := make(chan error, 1)
	go func() { flushed <- o.Flush(context.Background()) }()
	for len(o.in) == 0 { // the barrier is queued before the append
		time.Sleep(time.Millisecond)
	}
	mustAppend(t, o, 5, true, txn(5, 1, 2))
	early := seen.take()
	if len(early) != 1 || len(early[0].Events) != 2 {
		t.Fatalf("early notices %+v", early)
	}
	now := time.Now()
	o.Record(Result{Endpoint: "a", Key: KeyOf(early[0].Events[0]), Outcome: Delivered, Attempt: Attempt{At: now, Status: 200}},
		Result{Endpoint: "a", Key: KeyOf(early[0].Events[1]), Outcome: Retry, Next: now.Add(time.Hour),
			Attempt: Attempt{At: now, Status: 503}})
	release()
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	mustFlush(t, o)
	page, err := o.Pending("a", PendingQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 1 || page.Deliveries[0].Key != (Key{5, 1}) || page.Deliveries[0].Attempts != 1 {
		t.Errorf("pending after the results: %+v, want only 0/5#1 with its failed attempt", page.Deliveries)
	}
	if st, _ := o.Endpoints(); st[0].Depth != 1 {
		t.Errorf("depth %d, want 1", st[0].Depth)
	}
}

// TestEarlyNoticePlan: which appends give early notices, and their bounds.
// An early notice must carry every new delivery between From and To, so
// only transactions appended in one piece that follow the previous one
// directly get one; the others are left to the committed notice.
func TestEarlyNoticePlan(t *testing.T) {
	type appendReq struct {
		pos     change.Position
		last    bool
		tickets []int64
	}
	type early struct {
		from, to change.Position
		events   int
	}
	for _, c := range []struct {
		name    string
		appends []appendReq
		want    []early
	}{
		{"whole transactions", []appendReq{{10, true, []int64{1, 2}}, {20, true, []int64{3}}},
			[]early{{0, 10, 2}, {10, 20, 1}}},
		{"filtered out: an empty notice keeps the chain", []appendReq{{10, true, []int64{7}}, {20, true, []int64{2}}},
			[]early{{0, 10, 0}, {10, 20, 1}}},
		{"in chunks: none", []appendReq{{10, false, []int64{1}}, {10, true, []int64{2}}, {20, true, []int64{3}}},
			[]early{{10, 20, 1}}},
		{"after an abandoned transaction: none", []appendReq{{10, false, []int64{1}}, {20, true, []int64{2}}, {30, true, []int64{3}}},
			[]early{{20, 30, 1}}},
		{"already stored: none", []appendReq{{10, true, []int64{1}}, {10, true, []int64{1}}, {5, true, []int64{1}}, {20, true, []int64{1}}},
			[]early{{0, 10, 1}, {10, 20, 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seen notices
			wants := func(e *mapping.Event) bool { return e.TicketID != 7 }
			o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: wants, Notify: seen.notify})
			next := map[change.Position]int{}
			for _, a := range c.appends {
				evs := txn(a.pos, a.tickets...)
				for i := range evs { // a later chunk continues the indexes of the one before
					evs[i].Index += uint32(next[a.pos])
					evs[i].ID = mapping.EventID(a.pos, evs[i].Index)
				}
				next[a.pos] += len(evs)
				mustAppend(t, o, a.pos, a.last, evs)
			}
			mustFlush(t, o)
			var got []early
			for _, n := range seen.take() {
				if !n.Committed {
					got = append(got, early{n.From, n.To, len(n.Events)})
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("early notices %v, want %v", got, c.want)
			}
		})
	}
}

package outbox_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// TestCommitsResultsWhileIdle: delivery results recorded while no append
// follows are committed on their own. (They once waited for the next
// append, so the last deliveries before a quiet period stayed pending and
// were sent again after a restart.)
func TestCommitsResultsWhileIdle(t *testing.T) {
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "o.db"), outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	ctx := context.Background()
	all := func(*mapping.Event) bool { return true }
	if err := ob.SetSubscriptions(ctx, []outbox.Subscription{{Name: "a", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	pos := change.Position(100)
	ev := mapping.Event{ID: mapping.EventID(pos, 0), Type: mapping.TicketCreated, Pos: pos, TicketID: 1,
		CommitTime: time.Now(), Payload: []byte(`{}`)}
	if err := ob.Append(ctx, pos, true, []mapping.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := ob.Pending("a", outbox.PendingQuery{})
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("pending = %+v, %v; want the event", page, err)
	}
	ob.Record(outbox.Result{Endpoint: "a", Key: page.Deliveries[0].Key, Outcome: outbox.Delivered,
		Attempt: outbox.Attempt{At: time.Now(), Status: 200}})

	deadline := time.Now().Add(3 * time.Second)
	for {
		eps, err := ob.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) == 1 && eps[0].Depth == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a delivered result recorded while idle is still uncommitted after 3s (depth %d): "+
				"the committer does not commit results without an append", eps[0].Depth)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

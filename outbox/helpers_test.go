package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// txn builds the events of one source transaction at pos: one per ticket
// given, with a payload naming them.
func txn(pos change.Position, tickets ...int64) []mapping.Event {
	evs := make([]mapping.Event, len(tickets))
	for i, tk := range tickets {
		evs[i] = event(pos, uint32(i), tk, mapping.TicketReply)
	}
	return evs
}

func event(pos change.Position, idx uint32, ticket int64, typ string) mapping.Event {
	return mapping.Event{
		ID:         mapping.EventID(pos, idx),
		Type:       typ,
		Pos:        pos,
		Index:      idx,
		CommitTime: time.Unix(1700000000, 0).Add(time.Duration(pos) * time.Second).UTC(),
		TicketID:   ticket,
		DeptID:     1,
		SourceID:   2,
		Payload:    fmt.Appendf(nil, `{"event":%q,"ticket":{"id":"%d","pos":"%d","index":"%d"}}`, typ, ticket, pos, idx),
	}
}

// durable records OnDurable calls.
type durable struct {
	mu  sync.Mutex
	got []change.Position
	ch  chan change.Position
}

func newDurable() *durable { return &durable{ch: make(chan change.Position, 1<<16)} }

func (d *durable) on(p change.Position) {
	d.mu.Lock()
	d.got = append(d.got, p)
	d.mu.Unlock()
	d.ch <- p
}

func (d *durable) all() []change.Position {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]change.Position(nil), d.got...)
}

// waitFor waits until OnDurable reported pos or later.
func (d *durable) waitFor(t testing.TB, pos change.Position) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		n := len(d.got)
		reached := n > 0 && d.got[n-1] >= pos
		d.mu.Unlock()
		if reached {
			return
		}
		select {
		case <-d.ch:
		case <-timeout:
			t.Fatalf("OnDurable never reported %s (got %v)", pos, d.all())
		}
	}
}

// notices records an endpoint's notices.
type notices struct {
	mu  sync.Mutex
	got []Notice
}

func (n *notices) notify(x Notice) {
	n.mu.Lock()
	n.got = append(n.got, x)
	n.mu.Unlock()
}

func (n *notices) take() []Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.got
	n.got = nil
	return out
}

func all(*mapping.Event) bool { return true }

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

func testLogger(t testing.TB) (*slog.Logger, *testenv.Output) {
	buf := &testenv.Output{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// open opens a store in dir (a new temp dir when empty) with the given
// subscriptions already set.
func open(t testing.TB, path string, opts Options, subs ...Subscription) *Outbox {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "outbox.db")
	}
	o, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	if err := o.SetSubscriptions(context.Background(), subs); err != nil {
		t.Fatal(err)
	}
	return o
}

func mustAppend(t testing.TB, o *Outbox, pos change.Position, last bool, evs []mapping.Event) {
	t.Helper()
	if err := o.Append(context.Background(), pos, last, evs); err != nil {
		t.Fatalf("append %s: %v", pos, err)
	}
}

func mustFlush(t testing.TB, o *Outbox) {
	t.Helper()
	if err := o.Flush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// pendingKeys lists an endpoint's deliverable pending keys.
func pendingKeys(t testing.TB, o *Outbox, endpoint string) []Key {
	t.Helper()
	var keys []Key
	after := Key{}
	for {
		page, err := o.Pending(endpoint, PendingQuery{After: after, Max: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deliveries {
			keys = append(keys, d.Key)
		}
		if page.End {
			return keys
		}
		after = page.Last
	}
}

// bucketLen counts the keys of a top-level bucket (white box).
func bucketLen(t testing.TB, o *Outbox, name []byte) int {
	t.Helper()
	n := 0
	err := o.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func deliverAll(t testing.TB, o *Outbox, endpoint string) int {
	t.Helper()
	n := 0
	after := Key{}
	for {
		page, err := o.Pending(endpoint, PendingQuery{After: after, Max: 1000})
		if err != nil {
			t.Fatal(err)
		}
		results := make([]Result, len(page.Deliveries))
		for i, d := range page.Deliveries {
			results[i] = Result{Endpoint: endpoint, Key: d.Key, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}}
		}
		o.Record(results...)
		n += len(results)
		if page.End {
			mustFlush(t, o)
			return n
		}
		after = page.Last
	}
}

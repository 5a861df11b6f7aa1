package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

func TestGroupCommitReportsOnlyCommittedPositions(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := newDurable()
	var o *Outbox
	var violations []string
	opts := Options{Registerer: reg, OnDurable: func(p change.Position) {
		// Runs after the commit: a fresh read transaction must see every
		// event of p and the stored position.
		if o.Position() < p {
			violations = append(violations, "position "+o.Position().String()+" < reported "+p.String())
		}
		if err := o.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketEvents).Get(Key{Pos: p, Index: 2}.bytes()) == nil {
				violations = append(violations, "event of "+p.String()+" not readable")
			}
			return nil
		}); err != nil {
			violations = append(violations, err.Error())
		}
		d.on(p)
	}}
	o = open(t, "", opts, Subscription{Name: "a", Wants: all}) // fsync on

	const txns = 2000
	for i := 1; i <= txns; i++ {
		pos := change.Position(i * 100)
		mustAppend(t, o, pos, true, txn(pos, int64(i), int64(i), int64(i+1)))
	}
	d.waitFor(t, txns*100)

	got := d.all()
	if !slices.IsSorted(got) {
		t.Errorf("OnDurable positions not increasing: %v", got)
	}
	n := counterValue(t, reg, "deskhook_outbox_commits_total")
	t.Logf("%d transactions in %d commits (%d OnDurable calls)", txns, int(n), len(got))
	if n >= txns/2 {
		t.Errorf("%v commits for %d transactions: group commit is not grouping", n, txns)
	}
	if len(violations) > 0 {
		t.Errorf("OnDurable before the data was committed: %v", violations[:min(5, len(violations))])
	}
	if o.Position() != txns*100 {
		t.Errorf("Position %s, want %s", o.Position(), change.Position(txns*100))
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 3*txns {
		t.Errorf("%d pending entries, want %d", len(keys), 3*txns)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestRestartResumesAndSkipsStoredTransactions: after a restart the source
// resends from an older acknowledged position, and its mapper, starting
// cold, may map a transaction to other bodies than the first time (it
// reads related rows as they are now). What is stored stays as it was: the
// ids and bodies already stored (and perhaps sent) are the ones delivered.
func TestRestartResumesAndSkipsStoredTransactions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	for i := 1; i <= 10; i++ {
		pos := change.Position(i)
		mustAppend(t, o, pos, true, txn(pos, int64(i)))
	}
	mustFlush(t, o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	d := newDurable()
	var seen notices
	o = open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	if o.Position() != 10 {
		t.Fatalf("reopened at %s, want 0/A", o.Position())
	}
	// The source resends from an older acknowledged position, mapped again
	// to other bodies.
	remapped := func(pos change.Position) []mapping.Event {
		evs := txn(pos, int64(pos))
		evs[0].Payload = fmt.Appendf(nil, `{"event":"ticket_reply","remapped":"%d"}`, pos)
		return evs
	}
	for i := 5; i <= 10; i++ {
		pos := change.Position(i)
		mustAppend(t, o, pos, true, remapped(pos))
	}
	d.waitFor(t, 10)
	if got := d.all(); got[0] > 10 {
		t.Errorf("skipped transactions reported as %v", got)
	}
	if n := seen.take(); len(n) != 0 {
		t.Errorf("notices for resent transactions only: %+v, want none (nothing new is stored)", n)
	}
	for i := 11; i <= 12; i++ {
		pos := change.Position(i)
		mustAppend(t, o, pos, true, txn(pos, int64(i)))
	}
	d.waitFor(t, 12)
	page, err := o.Pending("a", PendingQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 12 {
		t.Errorf("%d pending entries after resending, want 12 (no duplicates)", len(page.Deliveries))
	}
	for _, dl := range page.Deliveries {
		if want := txn(dl.Key.Pos, int64(dl.Key.Pos))[0].Payload; !bytes.Equal(dl.Event.Payload, want) {
			t.Errorf("%s: stored body %s, want the first one %s", dl.Key, dl.Event.Payload, want)
		}
	}
	if n := seen.take(); len(n) == 0 || n[len(n)-1].To != 12 {
		t.Errorf("notices %+v, want the last one up to 12", n)
	}
}

func TestChunkedTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	d := newDurable()
	var seen notices
	o := open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	mustAppend(t, o, 1, true, txn(1, 1))
	const pos = 7
	evs := txn(pos, 1, 2, 3, 4, 5, 6)
	mustAppend(t, o, pos, false, evs[:2])
	mustAppend(t, o, pos, false, evs[2:4])
	mustFlush(t, o)
	if o.Position() != 1 || slices.Contains(d.all(), pos) {
		t.Fatalf("incomplete transaction acknowledged: position %s, OnDurable %v", o.Position(), d.all())
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 1 {
		t.Errorf("events of an incomplete transaction are deliverable: %v", keys)
	}

	// A crash now: the source resends the whole transaction after restart.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	seen.take()
	o = open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	if o.Position() != 1 {
		t.Fatalf("reopened at %s, want 0/1", o.Position())
	}
	mustAppend(t, o, pos, false, evs[:3])
	mustAppend(t, o, pos, true, evs[3:])
	d.waitFor(t, pos)
	keys := pendingKeys(t, o, "a")
	if len(keys) != 7 {
		t.Errorf("%d pending entries, want 7 (1 + 6, no duplicates): %v", len(keys), keys)
	}
	st, _ := o.Endpoints()
	if st[0].Depth != 7 {
		t.Errorf("depth %d, want 7", st[0].Depth)
	}
	if n := bucketLen(t, o, bucketEvents); n != 7 {
		t.Errorf("%d stored events, want 7", n)
	}
	if n := seen.take(); len(n) == 0 || n[len(n)-1].To != pos {
		t.Errorf("notices %+v, want the last one up to %d", n, pos)
	}

	// Chunks committed separately in one run: no notice says 9 before its
	// last chunk is stored, the commit that stores it does.
	evs = txn(9, 1, 2, 3)
	mustAppend(t, o, 9, false, evs[:2])
	mustFlush(t, o)
	for _, n := range seen.take() {
		if n.To >= 9 {
			t.Errorf("notice %+v before the transaction at 9 is complete", n)
		}
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 7 {
		t.Errorf("events of an incomplete transaction are deliverable: %v", keys)
	}
	mustAppend(t, o, 9, true, evs[2:])
	d.waitFor(t, 9)
	if n := seen.take(); len(n) != 1 || n[0].To != 9 {
		t.Errorf("notices %+v, want one up to 9", n)
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 10 {
		t.Errorf("%d pending entries, want 10", len(keys))
	}
}

// TestNoticeComesAfterTheCommit: an endpoint hears of new deliveries only
// once they are durable, so what it sends is what a restart finds in the
// store; and an append is committed by itself, without a Flush.
func TestNoticeComesAfterTheCommit(t *testing.T) {
	var o *Outbox
	type seen struct {
		n        Notice
		readable []int64 // tickets of the endpoint's deliverable entries at the notice
	}
	got := map[string]chan seen{"a": make(chan seen, 8), "b": make(chan seen, 8)}
	notify := func(name string) func(Notice) {
		return func(n Notice) {
			// White box: a fresh read transaction in the committer, as a
			// reader's would be, right after the commit.
			var tickets []int64
			_ = o.db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(bucketEndpoints).Bucket([]byte(name)).Bucket(bucketPending).Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					rec, _ := parseDelivery(v)
					tickets = append(tickets, rec.ticket)
				}
				return nil
			})
			got[name] <- seen{n, tickets}
		}
	}
	o = open(t, "", Options{NoSync: true, ResultDelay: time.Hour},
		Subscription{Name: "a", Wants: all, Notify: notify("a")},
		Subscription{Name: "b", Wants: func(e *mapping.Event) bool { return e.TicketID == 2 }, Notify: notify("b")})
	mustAppend(t, o, 5, true, txn(5, 1, 2, 3))
	for name, want := range map[string][]int64{"a": {1, 2, 3}, "b": {2}} {
		select {
		case s := <-got[name]:
			if s.n.To != 5 || !slices.Equal(s.readable, want) {
				t.Errorf("%s: notice %+v with tickets %v in the store, want To 5 and %v", name, s.n, s.readable, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no notice 10 s after an append: an append alone is not committed", name)
		}
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	if err := o.Append(ctx, 1, true, txn(1, 1)); err == nil || !strings.Contains(err.Error(), "SetSubscriptions") {
		t.Errorf("Append before SetSubscriptions: %v", err)
	}
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}, {Name: "a"}}); err == nil {
		t.Errorf("duplicate subscription accepted")
	}
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	wrongPos := txn(2, 1)
	wrongPos[0].Pos = 3
	noID := txn(2, 1)
	noID[0].ID = ""
	disorder := txn(2, 1, 2)
	disorder[1].Index = 0
	for name, c := range map[string]struct {
		pos  change.Position
		evs  []mapping.Event
		want string
	}{
		"position 0":     {0, nil, "position 0"},
		"wrong position": {2, wrongPos, "has position"},
		"no id":          {2, noID, "id of 0 bytes"},
		"out of order":   {2, disorder, "index 0 after index 0"},
	} {
		if err := o.Append(ctx, c.pos, true, c.evs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
	mustFlush(t, o)
	if o.Position() != 0 {
		t.Errorf("bad appends stored something: position %s", o.Position())
	}
}

func TestWriteErrorStopsIntakeAndLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	d := newDurable()
	// MaxSize makes the file's growth fail as a full disk would.
	o := open(t, path, Options{OnDurable: d.on, MaxSize: 1 << 20, LockTimeout: time.Second},
		Subscription{Name: "a", Wants: all})
	big := make([]byte, 8<<10)
	for i := range big {
		big[i] = 'x'
	}
	var appendErr error
	var last change.Position
	for i := 1; i <= 1000 && appendErr == nil; i++ {
		pos := change.Position(i)
		evs := txn(pos, int64(i))
		evs[0].Payload = append([]byte(`{"pad":"`), append(big, `"}`...)...)
		if appendErr = o.Append(context.Background(), pos, true, evs); appendErr == nil {
			last = pos
			_ = o.Flush(context.Background())
		}
	}
	if appendErr == nil {
		t.Fatal("1000 appends of 8 KiB fitted in a 1 MiB file")
	}
	if !strings.Contains(appendErr.Error(), "intake stopped") || !strings.Contains(appendErr.Error(), path) {
		t.Errorf("append error does not say what happened: %v", appendErr)
	}
	if o.Err() == nil {
		t.Error("Err() is nil after a write error")
	}
	acked := d.all()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the file filled up")
	}
	maxAcked := acked[len(acked)-1]
	if maxAcked >= last {
		t.Errorf("OnDurable reported %s, the last queued append %s was never committed", maxAcked, last)
	}
	t.Logf("file full after %d transactions: %v", maxAcked, appendErr)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything acknowledged is still there.
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	if o.Position() != maxAcked {
		t.Errorf("reopened at %s, want the last acknowledged %s", o.Position(), maxAcked)
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != int(maxAcked) {
		t.Errorf("%d events after reopening, want %d", len(keys), maxAcked)
	}
}

func TestDeliveredEventsArePrunedAndTheFileStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	pos := change.Position(0)
	var sizes []int64
	for cycle := 0; cycle < 60; cycle++ {
		for i := 0; i < 200; i++ {
			pos++
			mustAppend(t, o, pos, true, txn(pos, int64(i), int64(i+1), int64(i+2)))
		}
		mustFlush(t, o)
		if n := deliverAll(t, o, "a"); n != 600 {
			t.Fatalf("cycle %d: delivered %d, want 600", cycle, n)
		}
		sizes = append(sizes, size())
	}
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left after everything was delivered", n)
	}
	t.Logf("file size after cycles 1, 10, 30, 60: %d %d %d %d", sizes[0], sizes[9], sizes[29], sizes[59])
	if sizes[59] > sizes[9] {
		t.Errorf("file grew from %d to %d bytes between cycles 10 and 60 while everything was delivered", sizes[9], sizes[59])
	}
}

func TestFanOutKeepsEventsUntilEveryEndpointIsDone(t *testing.T) {
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all},
		Subscription{Name: "c", Wants: func(e *mapping.Event) bool { return e.TicketID == 1 }})
	mustAppend(t, o, 1, true, txn(1, 1, 2))
	mustFlush(t, o)
	if n := bucketLen(t, o, bucketEvents); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
	deliverAll(t, o, "a")
	if n := bucketLen(t, o, bucketEvents); n != 2 {
		t.Errorf("after a delivered: %d events stored, want 2 (b and c still need them)", n)
	}
	deliverAll(t, o, "b")
	if n := bucketLen(t, o, bucketEvents); n != 1 {
		t.Errorf("after b delivered: %d events stored, want 1 (c needs ticket 1)", n)
	}
	// c's event dies: its body stays for a replay, until the dead letter is dropped.
	o.Record(Result{Endpoint: "c", Key: Key{1, 0}, Outcome: Dead, Attempt: Attempt{At: time.Now(), Status: 500}})
	mustFlush(t, o)
	if n := bucketLen(t, o, bucketEvents); n != 1 {
		t.Errorf("dead letter's event pruned")
	}
	if n, err := o.Drop(context.Background(), DeadFilter{Endpoint: "c"}); err != nil || n != 1 {
		t.Fatalf("drop: %d %v", n, err)
	}
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left after every endpoint was done", n)
	}
	if n := bucketLen(t, o, bucketRefs); n != 0 {
		t.Errorf("%d reference counts left", n)
	}
}

func TestRetryStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	mustAppend(t, o, 1, true, txn(1, 1))
	mustFlush(t, o)
	next := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	o.Record(Result{Endpoint: "a", Key: Key{1, 0}, Outcome: Retry, Next: next,
		Attempt: Attempt{At: time.Now(), Status: 503, Error: "busy", Latency: time.Millisecond}})
	mustFlush(t, o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	page, err := o.Pending("a", PendingQuery{})
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("pending after restart: %+v %v", page, err)
	}
	dl := page.Deliveries[0]
	if dl.Attempts != 1 || !dl.Next.Equal(next) || dl.Event.ID != mapping.EventID(1, 0) {
		t.Errorf("after restart: attempts %d next %v id %s; want 1, %v, %s", dl.Attempts, dl.Next, dl.Event.ID, next, mapping.EventID(1, 0))
	}
	st, err := o.Endpoint("a")
	if err != nil || st.LastError != "HTTP 503: busy" {
		t.Errorf("endpoint state %+v %v, want last error HTTP 503: busy", st, err)
	}
}

func TestEventRoundTrip(t *testing.T) {
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	in := event(9, 3, 42, mapping.TicketStatusUpdated)
	in.DeptID, in.SourceID = 7, 8
	in.CommitTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	mustAppend(t, o, 9, true, []mapping.Event{in})
	mustFlush(t, o)
	page, err := o.Pending("a", PendingQuery{})
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("%+v %v", page, err)
	}
	out := page.Deliveries[0].Event
	if out.ID != in.ID || out.Type != in.Type || out.Pos != in.Pos || out.Index != in.Index ||
		!out.CommitTime.Equal(in.CommitTime) || out.TicketID != in.TicketID || out.DeptID != in.DeptID ||
		out.SourceID != in.SourceID || string(out.Payload) != string(in.Payload) {
		t.Errorf("stored %+v\nread   %+v", in, *out)
	}
}

func TestClosedOutbox(t *testing.T) {
	o := open(t, "", Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Append(context.Background(), 1, true, txn(1, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if err := o.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
}

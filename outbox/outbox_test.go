package outbox

import (
	"context"
	"errors"
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
	// The source resends from an older acknowledged position.
	for i := 5; i <= 10; i++ {
		pos := change.Position(i)
		mustAppend(t, o, pos, true, txn(pos, int64(i)))
	}
	d.waitFor(t, 10)
	if got := d.all(); got[0] > 10 {
		t.Errorf("skipped transactions reported as %v", got)
	}
	for i := 11; i <= 12; i++ {
		pos := change.Position(i)
		mustAppend(t, o, pos, true, txn(pos, int64(i)))
	}
	d.waitFor(t, 12)
	keys := pendingKeys(t, o, "a")
	if len(keys) != 12 {
		t.Errorf("%d pending entries after resending, want 12 (no duplicates): %v", len(keys), keys)
	}
	var notified []Key
	for _, n := range seen.take() {
		for _, e := range n.Events {
			notified = append(notified, KeyOf(e))
		}
	}
	if want := []Key{{11, 0}, {12, 0}}; !slices.Equal(notified, want) {
		t.Errorf("notified %v, want only the new %v", notified, want)
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
	// The two chunks land in one group (an early notice carries all 6
	// events) or in two (the completing group is partial: no early notice,
	// and the committed notice tells the reader to look at the store).
	var notified []Key
	sawCommit := false
	for _, n := range seen.take() {
		for _, e := range n.Events {
			notified = append(notified, KeyOf(e))
		}
		sawCommit = sawCommit || (n.Committed && n.To >= pos)
	}
	if len(notified) != 6 && (len(notified) != 0 || !sawCommit) {
		t.Errorf("notified %v (a committed notice up to %d: %v), want the 6 events of the resent transaction, or none and a committed notice",
			notified, pos, sawCommit)
	}

	// Chunks committed separately in one run: the completing commit cannot
	// carry the earlier chunks' events, so it says Partial.
	evs = txn(9, 1, 2, 3)
	mustAppend(t, o, 9, false, evs[:2])
	mustFlush(t, o)
	mustAppend(t, o, 9, true, evs[2:])
	d.waitFor(t, 9)
	var early, committed bool
	for _, n := range seen.take() {
		early = early || (n.To == 9 && !n.Committed)
		committed = committed || (n.To == 9 && n.Committed && n.Events == nil)
	}
	if early || !committed {
		t.Errorf("the commit completing a transaction begun in an earlier commit: early notice %v (want none: "+
			"it cannot carry the earlier chunks), committed notice %v", early, committed)
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 10 {
		t.Errorf("%d pending entries, want 10", len(keys))
	}
}

func TestNoticeCarriesEventsOfCompleteTransactions(t *testing.T) {
	var a, b notices
	o := open(t, "", Options{NoSync: true},
		Subscription{Name: "a", Wants: all, Notify: a.notify},
		Subscription{Name: "b", Wants: func(e *mapping.Event) bool { return e.TicketID == 2 }, Notify: b.notify})
	mustAppend(t, o, 5, true, txn(5, 1, 2, 3))
	mustFlush(t, o)
	check := func(name string, ns []Notice, want []int64) {
		t.Helper()
		var got []int64
		for _, n := range ns {
			for _, e := range n.Events {
				got = append(got, e.TicketID)
			}
		}
		if len(ns) != 2 || ns[0].Committed || !ns[1].Committed || ns[1].Events != nil {
			t.Errorf("%s: notices %+v, want an early one with the events, then a committed one", name, ns)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s notified of tickets %v, want %v", name, got, want)
		}
		if len(ns) == 0 || ns[len(ns)-1].To != 5 || ns[0].From != 0 {
			t.Errorf("%s notices %+v, want From 0 To 5", name, ns)
		}
	}
	check("a", a.take(), []int64{1, 2, 3})
	check("b", b.take(), []int64{2})
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

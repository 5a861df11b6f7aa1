package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// TestLockHelperProcess is not a test: TestStoreLockedByAnotherProcess runs
// the test binary again with it to hold the store from another process.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("DESKHOOK_OUTBOX_LOCK_HELPER")
	if path == "" {
		return // not the helper: nothing to do
	}
	o, err := Open(path, Options{NoSync: true})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // hold until the parent closes stdin
	_ = o.Close()
	os.Exit(0)
}

func TestStoreLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "DESKHOOK_OUTBOX_LOCK_HELPER="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper process: %q %v", line, err)
	}

	start := time.Now()
	_, err = Open(path, Options{LockTimeout: 300 * time.Millisecond})
	took := time.Since(start)
	want := fmt.Sprintf("store %s is in use by another deskhook process", path)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v; want ErrInUse saying %q", err, want)
	}
	if took > 2*time.Second {
		t.Errorf("second open took %v to fail", took)
	}
	t.Logf("second open failed after %v: %v", took.Round(time.Millisecond), err)

	// Once the other process is gone, the store opens.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	o, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("open after the other process exited: %v", err)
	}
	o.Close()
}

func TestDeadLettersListShowReplayDrop(t *testing.T) {
	var seen notices
	o := open(t, "", Options{NoSync: true},
		Subscription{Name: "a", Wants: all, Notify: seen.notify}, Subscription{Name: "b", Wants: all})
	ctx := context.Background()
	for pos := change.Position(1); pos <= 6; pos++ {
		mustAppend(t, o, pos, true, txn(pos, int64(pos%3+1))) // tickets 2,3,1,2,3,1
	}
	mustFlush(t, o)
	long := strings.Repeat("r", MaxResponseSnippet+100)
	for pos := change.Position(1); pos <= 6; pos++ {
		k := Key{Pos: pos}
		at := time.Now()
		o.Record(Result{Endpoint: "a", Key: k, Outcome: Retry, Next: at.Add(time.Second),
			Attempt: Attempt{At: at, Status: 500, Response: "oops", Latency: 3 * time.Millisecond}})
		o.Record(Result{Endpoint: "a", Key: k, Outcome: Dead,
			Attempt: Attempt{At: at.Add(time.Second), Error: "connection reset", Response: long}})
	}
	mustFlush(t, o)

	list, err := o.DeadLetters(DeadFilter{})
	if err != nil || len(list) != 6 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	dl := list[0]
	if dl.Endpoint != "a" || dl.ID != mapping.EventID(1, 0) || dl.TicketID != 2 || dl.Type != mapping.TicketReply ||
		len(dl.Attempts) != 2 || dl.Payload != nil {
		t.Errorf("first dead letter %+v", dl)
	}
	if a := dl.Attempts; a[0].Status != 500 || a[0].Response != "oops" || a[0].Latency != 3*time.Millisecond ||
		a[1].Error != "connection reset" || len(a[1].Response) != MaxResponseSnippet {
		t.Errorf("attempts %+v", a)
	}

	for name, c := range map[string]struct {
		f    DeadFilter
		want int
	}{
		"endpoint b":  {DeadFilter{Endpoint: "b"}, 0},
		"ticket 1":    {DeadFilter{TicketID: 1}, 2},
		"one id":      {DeadFilter{ID: mapping.EventID(4, 0)}, 1},
		"time range":  {DeadFilter{From: event(2, 0, 0, "").CommitTime, To: event(5, 0, 0, "").CommitTime}, 3},
		"limit":       {DeadFilter{Limit: 4}, 4},
		"unknown tkt": {DeadFilter{TicketID: 99}, 0},
		"died before": {DeadFilter{DiedBy: list[0].DiedAt.Add(-time.Millisecond)}, 0},
		"died by now": {DeadFilter{DiedBy: time.Now().Add(time.Minute)}, 6},
	} {
		got, err := o.DeadLetters(c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("%s: %d dead letters (%v), want %d", name, len(got), err, c.want)
		}
	}

	show, err := o.DeadLetter("a", mapping.EventID(3, 0))
	if err != nil || string(show.Payload) != string(event(3, 0, 1, mapping.TicketReply).Payload) {
		t.Errorf("show: %s %v", show.Payload, err)
	}
	if _, err := o.DeadLetter("a", "evt_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("show unknown: %v", err)
	}

	// Replay by ticket: back to pending with no attempts and the same id.
	seen.take()
	n, err := o.Replay(ctx, DeadFilter{Endpoint: "a", TicketID: 1})
	if err != nil || n != 2 {
		t.Fatalf("replay: %d %v", n, err)
	}
	page, err := o.Pending("a", PendingQuery{})
	if err != nil || len(page.Deliveries) != 2 {
		t.Fatalf("pending after replay: %+v %v", page, err)
	}
	for _, d := range page.Deliveries {
		if d.Event.TicketID != 1 || d.Attempts != 0 || !d.Next.IsZero() || d.Event.ID != mapping.EventID(d.Key.Pos, 0) {
			t.Errorf("replayed %+v (event %+v)", d, d.Event)
		}
	}
	if ns := seen.take(); len(ns) != 1 || !ns[0].Reset {
		t.Errorf("notices after replay %+v, want one Reset", ns)
	}
	st, _ := o.Endpoints()
	if st[0].Depth != 2 || st[0].DeadLetters != 4 {
		t.Errorf("after replay: depth %d dead %d, want 2 and 4", st[0].Depth, st[0].DeadLetters)
	}
	// Replay all, then drop what is dead again.
	if n, err := o.Replay(ctx, DeadFilter{}); err != nil || n != 4 {
		t.Fatalf("replay all: %d %v", n, err)
	}
	o.Record(Result{Endpoint: "a", Key: Key{Pos: 2}, Outcome: Dead, Attempt: Attempt{At: time.Now(), Status: 400}})
	mustFlush(t, o)
	if n, err := o.Drop(ctx, DeadFilter{ID: mapping.EventID(2, 0)}); err != nil || n != 1 {
		t.Fatalf("drop: %d %v", n, err)
	}
	if list, _ := o.DeadLetters(DeadFilter{}); len(list) != 0 {
		t.Errorf("%d dead letters left", len(list))
	}
}

func TestEndpointAddedLaterAndRemoved(t *testing.T) {
	logger, logs := testLogger(t)
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true, Logger: logger}, Subscription{Name: "a", Wants: all})
	ctx := context.Background()
	mustAppend(t, o, 1, true, txn(1, 1, 2))
	mustFlush(t, o)

	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}, {Name: "late", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, 2, true, txn(2, 1))
	mustFlush(t, o)
	if keys := pendingKeys(t, o, "late"); !slices.Equal(keys, []Key{{2, 0}}) {
		t.Errorf("endpoint added later has %v pending, want only the later event 0/2#0", keys)
	}
	st, err := o.Endpoint("late")
	if err != nil || st.AddedPos != 1 || st.AddedAt.IsZero() {
		t.Errorf("late endpoint state %+v %v", st, err)
	}

	// Removing a orphans it: its queue and events stay, nothing new is
	// queued for it, and a WARN says what it holds.
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "late", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	if keys := pendingKeys(t, o, "a"); len(keys) != 3 {
		t.Errorf("orphaned endpoint a has %v pending, want its 3 entries kept", keys)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"endpoint is not in the configuration: its queue and dead letters are kept (orphaned)") ||
		!strings.Contains(logs.String(), "endpoint=a pending=3 dead_letters=0") {
		t.Errorf("no WARN for the orphaned queue:\n%s", logs)
	}
	mustAppend(t, o, 3, true, txn(3, 5))
	mustFlush(t, o)
	if keys := pendingKeys(t, o, "a"); len(keys) != 3 {
		t.Errorf("orphaned endpoint a: %v pending, want nothing new queued", keys)
	}
	eps, _ := o.Endpoints()
	if len(eps) != 2 || eps[0].Name != "a" || !eps[0].Orphaned() || eps[0].Depth != 3 || eps[0].OrphanedPos != 2 ||
		eps[1].Name != "late" || eps[1].Orphaned() || eps[1].Depth != 2 {
		t.Errorf("endpoints %+v", eps)
	}
	// Back in the configuration: its queue resumes, and it is told what
	// it missed.
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}, {Name: "late", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := o.Endpoint("a"); st.Orphaned() {
		t.Errorf("a still orphaned after it came back: %+v", st)
	}
	if !strings.Contains(logs.String(), "endpoint is back in the configuration: its queue resumes") ||
		!strings.Contains(logs.String(), "not_queued_after=0/2 not_queued_until=0/3") {
		t.Errorf("no log line for a's return:\n%s", logs)
	}
	if n := deliverAll(t, o, "a"); n != 3 {
		t.Errorf("a delivered %d after its return, want its 3 kept entries", n)
	}
	// Out again, then forgotten: its queue goes, and with it the events
	// nobody else needs.
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "late", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, 4, true, txn(4, 6))
	if _, err := o.Forget(ctx, "late"); !errors.Is(err, ErrSubscribed) || !strings.Contains(err.Error(), "remove it from the configuration") {
		t.Errorf("Forget of a configured endpoint: %v, want it refused", err)
	}
	if _, err := o.Forget(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Forget of an unknown endpoint: %v", err)
	}
	f, err := o.Forget(ctx, "a")
	if err != nil || f != (Forgotten{Pending: 0}) {
		t.Errorf("Forget(a) = %+v, %v", f, err)
	}
	if _, err := o.Pending("a", PendingQuery{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("forgotten endpoint still readable: %v", err)
	}
	if eps, _ := o.Endpoints(); len(eps) != 1 || eps[0].Name != "late" || eps[0].Depth != 3 {
		t.Errorf("endpoints %+v", eps)
	}
	// A paused endpoint (no Wants) keeps its queue but gets nothing new.
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "late"}}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, 5, true, txn(5, 1))
	mustFlush(t, o)
	if keys := pendingKeys(t, o, "late"); len(keys) != 3 {
		t.Errorf("paused endpoint: %v pending, want its 3 old entries", keys)
	}
}

func TestEnableDisablePersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	var seen notices
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all, Notify: seen.notify})
	ctx := context.Background()
	if err := o.Disable(ctx, "a", DisabledByGone, "HTTP 410 Gone from http://x/"); err != nil {
		t.Fatal(err)
	}
	if err := o.Disable(ctx, "a", DisabledByOperator, "later"); err != nil {
		t.Fatal(err)
	}
	if ns := seen.take(); len(ns) != 2 || !ns[0].State {
		t.Errorf("notices %+v, want State", ns)
	}
	if err := o.Disable(ctx, "nope", DisabledByOperator, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("disable unknown endpoint: %v", err)
	}
	o.Close()
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	st, err := o.Endpoint("a")
	if err != nil || !st.Disabled || st.DisabledBy != DisabledByGone || st.DisabledAt.IsZero() ||
		st.DisabledReason != "HTTP 410 Gone from http://x/" {
		t.Errorf("after reopen: %+v %v", st, err)
	}
	if err := o.Enable(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if st, _ := o.Endpoint("a"); st.Disabled || st.DisabledBy != "" {
		t.Errorf("after enable: %+v", st)
	}
}

func TestEndpointStatusAndReadOnlyOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	mustAppend(t, o, 3, true, txn(3, 1, 2, 3))
	mustFlush(t, o)
	o.Record(Result{Endpoint: "a", Key: Key{3, 0}, Outcome: Delivered, Attempt: Attempt{At: time.Now()}},
		Result{Endpoint: "a", Key: Key{3, 1}, Outcome: Dead, Attempt: Attempt{At: time.Now(), Status: 400}})
	mustFlush(t, o)
	o.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	eps, err := ro.Endpoints()
	if err != nil || len(eps) != 1 {
		t.Fatalf("%+v %v", eps, err)
	}
	e := eps[0]
	if e.Depth != 1 || e.DeadLetters != 1 || !e.Oldest.Equal(event(3, 0, 0, "").CommitTime) ||
		e.LastSuccess.IsZero() || e.LastError != "HTTP 400" {
		t.Errorf("status %+v", e)
	}
	if ro.Position() != 3 {
		t.Errorf("position %s", ro.Position())
	}
	if err := ro.Append(context.Background(), 4, true, nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("append to a read-only store: %v", err)
	}
	if _, err := ro.Replay(context.Background(), DeadFilter{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("replay in a read-only store: %v", err)
	}
	if err := ro.SetSubscriptions(context.Background(), nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("subscriptions of a read-only store: %v", err)
	}
	if err := ro.SetSubscriptions(context.Background(), nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("a second change of a read-only store's subscriptions (the plan lock is released): %v", err)
	}
}

// TestOrphanKeepsEventsOfResentChunks: a transaction stored in part (its
// chunks, not its end) is sent again after a restart. An endpoint that left
// the configuration meanwhile still holds entries of it: the body stays
// while it needs it, and goes when it is forgotten and the others are done.
func TestOrphanKeepsEventsOfResentChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ctx := context.Background()
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	mustAppend(t, o, 7, false, txn(7, 1, 2))
	mustFlush(t, o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart without a: the source resends the whole transaction.
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "b", Wants: all})
	if st, err := o.Endpoint("a"); err != nil || !st.Orphaned() {
		t.Fatalf("a after a restart without it: %+v %v, want orphaned", st, err)
	}
	mustAppend(t, o, 7, false, txn(7, 1, 2))
	mustAppend(t, o, 7, true, txn(7, 1, 2, 3))
	mustFlush(t, o)
	if n := deliverAll(t, o, "b"); n != 3 {
		t.Fatalf("b delivered %d, want 3", n)
	}
	page, err := o.Pending("a", PendingQuery{Max: 10})
	if err != nil || len(page.Deliveries) != 2 || string(page.Deliveries[1].Event.Payload) != string(txn(7, 1, 2)[1].Payload) {
		t.Fatalf("orphan a's queue after b delivered the same events: %+v %v, want both entries with their bodies", page, err)
	}
	// The file agrees: reference counts match the holders, orphan included.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := Check(path, time.Second); err != nil || !r.OK() {
		t.Fatalf("store check with an orphan holding events: %+v %v", r, err)
	}
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "b", Wants: all})
	// Dead letters count too.
	o.Record(Result{Endpoint: "a", Key: page.Deliveries[0].Key, Outcome: Dead, Attempt: Attempt{At: time.Now(), Status: 500}})
	mustFlush(t, o)
	f, err := o.Forget(ctx, "a")
	if err != nil || f != (Forgotten{Pending: 1, DeadLetters: 1}) {
		t.Errorf("Forget(a) = %+v, %v, want 1 pending and 1 dead letter", f, err)
	}
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left after everyone is done with them", n)
	}
	if n := bucketLen(t, o, bucketRefs); n != 0 {
		t.Errorf("%d reference counts left", n)
	}
}

package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// logOpts turns the delivery log on, with a retention nothing reaches.
func logOpts() Options {
	return Options{NoSync: true, Log: LogLimits{Retention: 24 * time.Hour, PruneInterval: time.Hour}}
}

// allLog lists the whole log, page by page.
func allLog(t testing.TB, o *Outbox, q LogQuery) []LogEntry {
	t.Helper()
	var out []LogEntry
	for pages := 0; ; pages++ {
		p, err := o.Log(q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Entries...)
		if p.Next == "" {
			return out
		}
		if pages > 100000 {
			t.Fatal("the listing never ends")
		}
		q.Cursor = p.Next
	}
}

func checkStore(t testing.TB, path string) *CheckReport {
	t.Helper()
	rep, err := Check(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("store check: %v", rep.Problems)
	}
	return rep
}

func TestLogRecordsEveryAttempt(t *testing.T) {
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	mustAppend(t, o, 1, true, txn(1, 4711, 12))
	mustFlush(t, o)
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	k := Key{Pos: 1}
	o.Record(Result{Endpoint: "a", Key: k, Outcome: Retry, Next: t0.Add(30 * time.Second),
		Attempt: Attempt{At: t0, Status: 503, Response: "maintenance", Latency: 12 * time.Millisecond}})
	o.Record(Result{Endpoint: "b", Key: k, Outcome: Retry, Next: t0.Add(time.Minute),
		Attempt: Attempt{At: t0.Add(time.Second), Error: "connection refused", Latency: time.Millisecond}})
	mustFlush(t, o)
	o.Record(Result{Endpoint: "a", Key: k, Outcome: Delivered, Attempt: Attempt{At: t0.Add(31 * time.Second), Status: 200, Response: "ok"}})
	o.Record(Result{Endpoint: "b", Key: k, Outcome: Dead, Attempt: Attempt{At: t0.Add(61 * time.Second), Status: 500}})
	mustFlush(t, o)

	got := allLog(t, o, LogQuery{TicketID: 4711})
	id := mapping.EventID(1, 0)
	want := []LogEntry{
		{At: t0.Add(61 * time.Second), Endpoint: "b", EventID: id, EventType: mapping.TicketReply, TicketID: 4711, Key: k, Attempt: 2, Outcome: Dead, Status: 500},
		{At: t0.Add(31 * time.Second), Endpoint: "a", EventID: id, EventType: mapping.TicketReply, TicketID: 4711, Key: k, Attempt: 2, Outcome: Delivered, Status: 200, Response: "ok"},
		{At: t0.Add(time.Second), Endpoint: "b", EventID: id, EventType: mapping.TicketReply, TicketID: 4711, Key: k, Attempt: 1, Outcome: Retry, Error: "connection refused", Duration: time.Millisecond, NextAt: t0.Add(time.Minute)},
		{At: t0, Endpoint: "a", EventID: id, EventType: mapping.TicketReply, TicketID: 4711, Key: k, Attempt: 1, Outcome: Retry, Status: 503, Response: "maintenance", Duration: 12 * time.Millisecond, NextAt: t0.Add(30 * time.Second)},
	}
	for i := range got {
		got[i].Cursor = ""
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ticket 4711's log:\n got %+v\nwant %+v", got, want)
	}
	if other := allLog(t, o, LogQuery{TicketID: 12}); len(other) != 0 {
		t.Errorf("ticket 12 was never attempted, its log shows %d entries", len(other))
	}

	// Delivered at a, dead at b: the event is kept (b's dead letter), and
	// after the dead letter is dropped, still kept for the log.
	if _, err := o.Drop(context.Background(), DeadFilter{Endpoint: "b"}); err != nil {
		t.Fatal(err)
	}
	ev, err := o.Event(id)
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Payload) != string(txn(1, 4711)[0].Payload) || ev.TicketID != 4711 || len(ev.Attempts) != 4 {
		t.Errorf("stored event: %s ticket %d, %d attempts", ev.Payload, ev.TicketID, len(ev.Attempts))
	}
	states := map[string]string{}
	for _, d := range ev.Endpoints {
		states[d.Endpoint] = d.State
	}
	if states["a"] != "delivered" || states["b"] != "done" {
		t.Errorf("endpoint states: %v, want a delivered and b done", states)
	}
	if n := bucketLen(t, o, bucketEvents); n != 2 {
		t.Errorf("%d events stored, want 2 (one in the log, one pending)", n)
	}
	o.Close()
	if rep := checkStore(t, o.Path()); rep.LogEntries != 4 {
		t.Errorf("check counted %d log entries, want 4", rep.LogEntries)
	}
}

// logModel is what a test recorded, in the order the log holds it.
type logModel struct {
	entries []LogEntry // oldest first
}

func (m *logModel) query(q LogQuery) []LogEntry {
	var out []LogEntry
	for i := len(m.entries) - 1; i >= 0; i-- {
		e := m.entries[i]
		switch {
		case q.Endpoint != "" && e.Endpoint != q.Endpoint,
			q.TicketID != 0 && e.TicketID != q.TicketID,
			q.EventID != "" && e.EventID != q.EventID,
			q.EventType != "" && e.EventType != q.EventType,
			len(q.Outcomes) > 0 && !slices.Contains(q.Outcomes, e.Outcome),
			!q.Since.IsZero() && e.At.Before(q.Since),
			!q.Until.IsZero() && !e.At.Before(q.Until):
			continue
		}
		out = append(out, e)
	}
	return out
}

// buildRandomLog records a random history: 3 endpoints, 40 tickets, three
// event types; each delivery fails 0-3 times, then is delivered or dies.
// Attempt times rise by round but not in the order results are recorded.
func buildRandomLog(t testing.TB, o *Outbox, rng *rand.Rand, events int) *logModel {
	types := []string{mapping.TicketCreated, mapping.TicketReply, mapping.TicketAssigned}
	eps := []string{"a", "b", "c"}
	type pair struct {
		ep   string
		ev   mapping.Event
		left int // failures before the final attempt
		dies bool
		n    int
	}
	var pairs []*pair
	for i := 0; i < events; i++ {
		pos := change.Position(i + 1)
		e := event(pos, 0, int64(1+rng.Intn(40)), types[rng.Intn(len(types))])
		mustAppend(t, o, pos, true, []mapping.Event{e})
		for _, ep := range eps {
			pairs = append(pairs, &pair{ep: ep, ev: e, left: rng.Intn(4), dies: rng.Intn(5) == 0})
		}
	}
	mustFlush(t, o)
	m := &logModel{}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	used := map[time.Time]bool{}
	for round := 0; len(pairs) > 0; round++ {
		var results []Result
		var models []LogEntry
		next := pairs[:0]
		rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		for _, p := range pairs {
			at := base.Add(time.Duration(round)*time.Hour + time.Duration(rng.Int63n(int64(time.Hour))))
			for used[at] {
				at = at.Add(time.Nanosecond)
			}
			used[at] = true
			p.n++
			r := Result{Endpoint: p.ep, Key: KeyOf(&p.ev), Attempt: Attempt{At: at, Latency: time.Duration(rng.Intn(1000)) * time.Millisecond}}
			switch {
			case p.left > 0:
				p.left--
				r.Outcome, r.Next = Retry, at.Add(time.Minute)
				r.Attempt.Status = 500 + rng.Intn(4)
				next = append(next, p)
			case p.dies:
				r.Outcome, r.Attempt.Error = Dead, "timeout: context deadline exceeded"
			default:
				r.Outcome, r.Attempt.Status = Delivered, 200
			}
			results = append(results, r)
			e := LogEntry{At: at, Endpoint: p.ep, EventID: p.ev.ID, EventType: p.ev.Type, TicketID: p.ev.TicketID,
				Key: r.Key, Attempt: p.n, Outcome: r.Outcome, Status: r.Attempt.Status, Error: r.Attempt.Error,
				Duration: r.Attempt.Latency}
			if r.Outcome == Retry {
				e.NextAt = r.Next
			}
			models = append(models, e)
		}
		o.Record(results...)
		mustFlush(t, o)
		m.entries = append(m.entries, models...)
		pairs = next
	}
	// The log's order: by attempt time, then by the order recorded.
	sort.SliceStable(m.entries, func(i, j int) bool { return m.entries[i].At.Before(m.entries[j].At) })
	return m
}

func TestLogQueriesMatchAScanOfEverything(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all},
		Subscription{Name: "c", Wants: all})
	m := buildRandomLog(t, o, rng, 300)
	t.Logf("%d attempts recorded", len(m.entries))
	base := m.entries[0].At
	span := m.entries[len(m.entries)-1].At.Sub(base)
	outcomeSets := [][]Outcome{nil, {Delivered}, {Retry}, {Dead}, {Retry, Dead}}
	wantIndex := func(q LogQuery) string {
		switch {
		case q.EventID != "":
			return "event"
		case q.TicketID != 0:
			return "ticket"
		case q.Endpoint != "":
			return "endpoint"
		case q.EventType != "":
			return "type"
		case len(q.Outcomes) > 0:
			return "outcome"
		}
		return "time"
	}
	run := func(t *testing.T, queries int) {
		for i := 0; i < queries; i++ {
			var q LogQuery
			if rng.Intn(3) == 0 {
				q.Endpoint = []string{"a", "b", "c", "nobody"}[rng.Intn(4)]
			}
			if rng.Intn(4) == 0 {
				q.TicketID = int64(1 + rng.Intn(41))
			}
			if rng.Intn(6) == 0 {
				q.EventID = m.entries[rng.Intn(len(m.entries))].EventID
			}
			if rng.Intn(4) == 0 {
				q.EventType = []string{mapping.TicketCreated, mapping.TicketReply, mapping.TicketAssigned}[rng.Intn(3)]
			}
			q.Outcomes = outcomeSets[rng.Intn(len(outcomeSets))]
			if rng.Intn(3) == 0 {
				q.Since = base.Add(time.Duration(rng.Int63n(int64(span))))
			}
			if rng.Intn(3) == 0 {
				q.Until = base.Add(time.Duration(rng.Int63n(int64(span))))
			}
			q.Limit = 1 + rng.Intn(60)
			want := m.query(q)
			first, err := o.Log(q)
			if err != nil {
				t.Fatal(err)
			}
			if first.Index != wantIndex(q) {
				t.Errorf("query %+v answered by index %q, want %q", q, first.Index, wantIndex(q))
			}
			got := allLog(t, o, q)
			for i := range got {
				got[i].Cursor = ""
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("query %+v: %d entries, want %d\n got %v\nwant %v", q, len(got), len(want), got, want)
			}
		}
	}
	t.Run("unbounded", func(t *testing.T) { run(t, 300) })
	// A query stops after maxLogScan index keys: with a small bound the
	// pages come short or empty, and following Next still lists the same.
	t.Run("bounded scans", func(t *testing.T) {
		defer func(n int) { maxLogScan = n }(maxLogScan)
		maxLogScan = 7
		run(t, 200)
		p, err := o.Log(LogQuery{Endpoint: "a", EventType: mapping.TicketAssigned, Outcomes: []Outcome{Dead}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if p.Scanned > maxLogScan || p.Next == "" {
			t.Errorf("a page scanned %d index keys (bound %d), next %q", p.Scanned, maxLogScan, p.Next)
		}
	})
	if _, err := o.Log(LogQuery{Cursor: "zz"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a cursor not handed out: %v, want ErrBadCursor", err)
	}
	o.Close()
	checkStore(t, o.Path())
}

// waitLog waits until the log's stats satisfy ok.
func waitLog(t *testing.T, o *Outbox, ok func(LogStats) bool) LogStats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := o.LogStats()
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log never got there: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogPrunedByAgeKeepsPendingEvents(t *testing.T) {
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	for pos := change.Position(1); pos <= 100; pos++ {
		mustAppend(t, o, pos, true, txn(pos, int64(pos%9)))
	}
	mustFlush(t, o)
	old := time.Now().Add(-2 * time.Hour)
	var results []Result
	for pos := change.Position(1); pos <= 100; pos++ {
		k := Key{Pos: pos}
		results = append(results, Result{Endpoint: "a", Key: k, Outcome: Delivered, Attempt: Attempt{At: old, Status: 200}})
		if pos <= 50 { // b: half delivered, half still retrying
			results = append(results, Result{Endpoint: "b", Key: k, Outcome: Delivered, Attempt: Attempt{At: old, Status: 200}})
		} else {
			results = append(results, Result{Endpoint: "b", Key: k, Outcome: Retry, Next: time.Now().Add(time.Hour),
				Attempt: Attempt{At: old, Status: 503}})
		}
	}
	o.Record(results...)
	mustFlush(t, o)
	// A recent attempt, which retention keeps.
	o.Record(Result{Endpoint: "b", Key: Key{Pos: 100}, Outcome: Retry, Next: time.Now().Add(time.Hour),
		Attempt: Attempt{At: time.Now(), Status: 503}})
	mustFlush(t, o)
	if n := bucketLen(t, o, bucketEvents); n != 100 {
		t.Fatalf("%d events stored before pruning, want 100 (every one in the log)", n)
	}
	o.SetLogLimits(LogLimits{Retention: time.Hour, PruneInterval: 10 * time.Millisecond})
	st := waitLog(t, o, func(st LogStats) bool { return st.Entries == 1 })
	if n := bucketLen(t, o, bucketEvents); n != 50 {
		t.Errorf("%d events left after pruning, want 50 (those still pending at b)", n)
	}
	if keys := pendingKeys(t, o, "b"); len(keys) != 50 || keys[0] != (Key{Pos: 51}) {
		t.Errorf("b's queue after pruning: %d entries from %v, want 50 from 51", len(keys), keys)
	}
	if ev, err := o.Event(mapping.EventID(3, 0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("event 3 (delivered everywhere, its log pruned): %v %v, want ErrNotFound", ev.ID, err)
	}
	if got := allLog(t, o, LogQuery{}); len(got) != 1 || got[0].Key != (Key{Pos: 100}) {
		t.Errorf("log after pruning: %+v", got)
	}
	if st.Bytes <= 0 {
		t.Errorf("log bytes %d with an entry left", st.Bytes)
	}
	o.Close()
	rep := checkStore(t, o.Path())
	if len(rep.Warnings) > 0 {
		t.Errorf("check warnings: %v", rep.Warnings)
	}
}

func TestLogPrunedBySize(t *testing.T) {
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all})
	const n = 400
	for pos := change.Position(1); pos <= n; pos++ {
		evs := txn(pos, int64(pos))
		evs[0].Payload = append(evs[0].Payload, make([]byte, 1000)...)
		mustAppend(t, o, pos, true, evs)
	}
	mustFlush(t, o)
	now := time.Now()
	for pos := change.Position(1); pos <= n; pos++ {
		o.Record(Result{Endpoint: "a", Key: Key{Pos: pos}, Outcome: Delivered,
			Attempt: Attempt{At: now.Add(time.Duration(pos) * time.Millisecond), Status: 200}})
	}
	mustFlush(t, o)
	full, _ := o.LogStats()
	if full.Entries != n || full.Bytes < n*1000 {
		t.Fatalf("log before pruning: %+v", full)
	}
	limit := full.Bytes / 4
	o.SetLogLimits(LogLimits{Retention: time.Hour, MaxBytes: limit, PruneInterval: time.Hour})
	st := waitLog(t, o, func(st LogStats) bool { return st.Bytes <= limit })
	if st.Entries < n/5 || st.Entries > n/3 {
		t.Errorf("%d entries left under a quarter of the size, want about %d", st.Entries, n/4)
	}
	got := allLog(t, o, LogQuery{})
	if len(got) != int(st.Entries) || got[0].Key != (Key{Pos: n}) || got[len(got)-1].Key.Pos != change.Position(n-len(got)+1) {
		t.Errorf("the newest entries are kept: got %d from %v to %v", len(got), got[0].Key, got[len(got)-1].Key)
	}
	if ev := bucketLen(t, o, bucketEvents); ev != len(got) {
		t.Errorf("%d events stored for %d log entries", ev, len(got))
	}
	o.Close()
	checkStore(t, o.Path())
}

func TestPruningGoesInBoundedSteps(t *testing.T) {
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all})
	for pos := change.Position(1); pos <= 300; pos++ {
		mustAppend(t, o, pos, true, txn(pos, 1))
	}
	mustFlush(t, o)
	old := time.Now().Add(-time.Hour)
	for pos := change.Position(1); pos <= 300; pos++ {
		o.Record(Result{Endpoint: "a", Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: old, Status: 200}})
	}
	mustFlush(t, o)
	lim := LogLimits{Retention: time.Minute}
	var steps []int
	for {
		var n int
		var more bool
		err := o.do(context.Background(), func(g *group) error {
			var err error
			n, more, err = g.pruneLog(time.Now(), lim, 128)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, n)
		if !more {
			break
		}
	}
	if fmt.Sprint(steps) != "[128 128 44]" {
		t.Errorf("pruned in steps %v, want [128 128 44]", steps)
	}
	if st, _ := o.LogStats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("log after pruning everything: %+v", st)
	}
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left", n)
	}
}

func TestResend(t *testing.T) {
	var na notices
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, logOpts(), Subscription{Name: "a", Wants: all, Notify: na.notify}, Subscription{Name: "b", Wants: all})
	// Tickets 1, 2, 3; commit times one second apart (pos seconds).
	for pos := change.Position(1); pos <= 6; pos++ {
		mustAppend(t, o, pos, true, txn(pos, int64(1+(pos-1)/2)))
	}
	mustFlush(t, o)
	now := time.Now()
	// 1, 2 delivered everywhere; 3 retrying at a; 4 dead at a; 5, 6 untouched.
	for pos := change.Position(1); pos <= 2; pos++ {
		for _, ep := range []string{"a", "b"} {
			o.Record(Result{Endpoint: ep, Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: now, Status: 200}})
		}
	}
	o.Record(Result{Endpoint: "a", Key: Key{Pos: 3}, Outcome: Retry, Next: now.Add(time.Hour), Attempt: Attempt{At: now, Status: 503}})
	o.Record(Result{Endpoint: "a", Key: Key{Pos: 4}, Outcome: Dead, Attempt: Attempt{At: now, Status: 500}})
	mustFlush(t, o)
	na.take()
	ctx := context.Background()

	res, err := o.Resend(ctx, ResendSelection{ID: mapping.EventID(1, 0)}, "a")
	if err != nil || res != (ResendResult{Events: 1, Queued: 1}) {
		t.Fatalf("resend of a delivered event: %+v %v", res, err)
	}
	if ns := na.take(); len(ns) == 0 || !ns[len(ns)-1].Reset {
		t.Errorf("a was not told to reread its queue: %+v", ns)
	}
	// Ticket 2 is events 3 (pending, retrying) and 4 (dead).
	if res, err = o.Resend(ctx, ResendSelection{TicketID: 2}, "a"); err != nil || res != (ResendResult{Events: 2, Due: 1, Revived: 1}) {
		t.Fatalf("resend of ticket 2: %+v %v", res, err)
	}
	page, err := o.Pending("a", PendingQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range page.Deliveries {
		got = append(got, fmt.Sprintf("%d:%d:%v", d.Key.Pos, d.Attempts, d.Next.IsZero()))
	}
	if fmt.Sprint(got) != "[1:0:true 3:1:true 4:0:true 5:0:true 6:0:true]" {
		t.Errorf("a's queue: %v", got)
	}
	// By commit time: events 2 and 3 (commit times pos seconds after the base).
	base := time.Unix(1700000000, 0)
	res, err = o.Resend(ctx, ResendSelection{From: base.Add(2 * time.Second), To: base.Add(4 * time.Second)}, "b")
	if err != nil || res != (ResendResult{Events: 2, Queued: 1, Due: 1}) {
		t.Fatalf("resend by time to b: %+v %v", res, err)
	}
	if keys := pendingKeys(t, o, "b"); fmt.Sprint(keys) != fmt.Sprint([]Key{{Pos: 2}, {Pos: 3}, {Pos: 4}, {Pos: 5}, {Pos: 6}}) {
		t.Errorf("b's queue: %v", keys)
	}
	// The refused.
	if _, err := o.Resend(ctx, ResendSelection{}, "a"); err == nil {
		t.Error("an empty selection was accepted")
	}
	if _, err := o.Resend(ctx, ResendSelection{TicketID: 1}, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown endpoint: %v", err)
	}
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Resend(ctx, ResendSelection{TicketID: 1}, "b"); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("an orphaned endpoint: %v", err)
	}
	if res, err := o.Resend(ctx, ResendSelection{ID: "evt_nope"}, "a"); err != nil || res.Events != 0 {
		t.Errorf("an id not stored: %+v %v", res, err)
	}
	o.Close()
	rep := checkStore(t, path)
	if len(rep.Warnings) > 0 {
		t.Errorf("check warnings: %v", rep.Warnings)
	}
}

func TestEventsListing(t *testing.T) {
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: all})
	for pos := change.Position(1); pos <= 30; pos++ {
		mustAppend(t, o, pos, true, txn(pos, int64(pos%3)))
	}
	mustFlush(t, o)
	var got []uint64
	q := EventQuery{TicketID: 1, Limit: 4}
	for {
		p, err := o.Events(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			got = append(got, uint64(e.Key.Pos))
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if fmt.Sprint(got) != "[28 25 22 19 16 13 10 7 4 1]" {
		t.Errorf("ticket 1's events: %v", got)
	}
	base := time.Unix(1700000000, 0)
	p, err := o.Events(EventQuery{From: base.Add(10 * time.Second), To: base.Add(13 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, e := range p.Events {
		got = append(got, uint64(e.Key.Pos))
	}
	if fmt.Sprint(got) != "[12 11 10]" || p.Next != "" {
		t.Errorf("events committed in [10s, 13s): %v next %q", got, p.Next)
	}
}

// TestUpgradeFromLayout1And2: a store written before the delivery log
// (layout 1, or 2 with chunked payloads) is read as one with an empty log
// while read-only, and upgraded (its events indexed) when opened for
// writing.
func TestUpgradeFromLayout1And2(t *testing.T) {
	for _, version := range []byte{layoutVersion, layoutChunked} {
		t.Run(fmt.Sprint(version), func(t *testing.T) { upgradeFrom(t, version) })
	}
}

func upgradeFrom(t *testing.T, version byte) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all})
	for pos := change.Position(1); pos <= 5; pos++ {
		mustAppend(t, o, pos, true, txn(pos, 7))
	}
	mustFlush(t, o)
	o.Close()
	// Make it a store as the deskhook before the log wrote it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLog); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketEventIdx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{version})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep := checkStore(t, path)
	if rep.Layout != int(version) || len(rep.Warnings) != 1 {
		t.Errorf("check of a layout %d store: layout %d, warnings %v", version, rep.Layout, rep.Warnings)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a layout %d store opened read-only: %v", version, err)
	}
	if p, err := ro.Log(LogQuery{TicketID: 7}); err != nil || len(p.Entries) != 0 {
		t.Errorf("its log: %+v %v", p, err)
	}
	ro.Close()
	o = open(t, path, logOpts(), Subscription{Name: "a", Wants: all})
	p, err := o.Events(EventQuery{TicketID: 7})
	if err != nil || len(p.Events) != 5 {
		t.Errorf("after the upgrade, ticket 7's events: %+v %v", p, err)
	}
	o.Close()
	if rep := checkStore(t, path); rep.Layout != layoutLog {
		t.Errorf("layout %d after the upgrade", rep.Layout)
	}
}

func TestCheckFindsLogDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, logOpts(), Subscription{Name: "a", Wants: all})
	for pos := change.Position(1); pos <= 3; pos++ {
		mustAppend(t, o, pos, true, txn(pos, 5))
	}
	mustFlush(t, o)
	for pos := change.Position(1); pos <= 3; pos++ {
		o.Record(Result{Endpoint: "a", Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}})
	}
	mustFlush(t, o)
	o.Close()
	clean, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	firstEntry := func(tx *bolt.Tx) ([]byte, logView) {
		lb, _ := logBucketsIn(tx)
		k, v := lb.entries.Cursor().First()
		view, _ := parseLogEntry(v)
		return append([]byte(nil), k...), view
	}
	for _, c := range []struct {
		name, want string
		damage     func(tx *bolt.Tx) error
	}{
		{"index key missing", "missing from the endpoint index", func(tx *bolt.Tx) error {
			k, v := firstEntry(tx)
			keys, _ := v.indexKeys(nil, nil, k)
			lb, _ := logBucketsIn(tx)
			return lb.endpoint.Delete(keys[1])
		}},
		{"event missing", "which is not stored", func(tx *bolt.Tx) error {
			_, v := firstEntry(tx)
			return tx.Bucket(bucketEvents).Delete(v.key.bytes())
		}},
		{"entry missing", "whose entry does not exist", func(tx *bolt.Tx) error {
			k, _ := firstEntry(tx)
			lb, _ := logBucketsIn(tx)
			return lb.entries.Delete(k)
		}},
		{"entry damaged", "does not decode", func(tx *bolt.Tx) error {
			k, _ := firstEntry(tx)
			lb, _ := logBucketsIn(tx)
			return lb.entries.Put(k, []byte{1, 9, 9})
		}},
		{"counter off", "size counter", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyLogStat, logStat{count: 2, bytes: 5}.encode())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "outbox.db")
			writeFile(t, p, clean)
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(c.damage)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Check(p, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			all := fmt.Sprint(rep.Problems, rep.Warnings)
			if !strings.Contains(all, c.want) {
				t.Errorf("check found %v, want %q", all, c.want)
			}
		})
	}
}

func TestKeyOfID(t *testing.T) {
	for _, k := range []Key{{Pos: 1}, {Pos: 0x1a2b3c4d5e6f, Index: 12345}, {Pos: ^change.Position(0), Index: ^uint32(0)}} {
		got, ok := KeyOfID(mapping.EventID(k.Pos, k.Index))
		if !ok || got != k {
			t.Errorf("KeyOfID(EventID(%v)) = %v %v", k, got, ok)
		}
	}
	for _, id := range []string{"", "evt_", "evt_0000000000000001_", "evt_0000000000000001_1", "evt_000000000000001_0001",
		"evt_000000000000000g_0001", "xyz_0000000000000001_0001", "evt_0000000000000001_0001x"} {
		if k, ok := KeyOfID(id); ok {
			t.Errorf("KeyOfID(%q) = %v, want none", id, k)
		}
	}
}

func TestResendByTicketOrTimeKeepsTheEndpointsFilter(t *testing.T) {
	notTwo := func(e *mapping.Event) bool { return e.TicketID != 2 }
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: notTwo}, Subscription{Name: "b", Wants: all})
	for pos := change.Position(1); pos <= 4; pos++ {
		mustAppend(t, o, pos, true, txn(pos, int64(1+(pos-1)/2))) // tickets 1, 1, 2, 2
	}
	mustFlush(t, o)
	deliverAll(t, o, "a")
	deliverAll(t, o, "b")
	ctx := context.Background()
	for _, sel := range []ResendSelection{{TicketID: 2}, {From: time.Unix(1700000000, 0)}} {
		res, err := o.Resend(ctx, sel, "a")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 2}[sel.TicketID == 2]; res.Events != want {
			t.Errorf("resend %+v to a: %+v, want %d events (ticket 2 is filtered out)", sel, res, want)
		}
		deliverAll(t, o, "a")
	}
	// By id, the operator's choice; and an explicit filter replaces the
	// subscription's.
	if res, err := o.Resend(ctx, ResendSelection{ID: mapping.EventID(3, 0)}, "a"); err != nil || res.Queued != 1 {
		t.Errorf("resend of ticket 2's event by id: %+v %v", res, err)
	}
	if res, err := o.Resend(ctx, ResendSelection{TicketID: 2, Wants: all}, "a"); err != nil || res.Events != 2 {
		t.Errorf("resend with an explicit filter: %+v %v", res, err)
	}
}

// TestForgetKeepsTheLog: forgetting an orphaned endpoint drops its queue
// and dead letters; its attempts stay in the log, with the events they
// point at, until retention prunes them; re-sending to it is refused.
func TestForgetKeepsTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, logOpts(), Subscription{Name: "a", Wants: all}, Subscription{Name: "gone", Wants: all})
	for pos := change.Position(1); pos <= 3; pos++ {
		mustAppend(t, o, pos, true, txn(pos, 9))
	}
	mustFlush(t, o)
	deliverAll(t, o, "a")
	o.Record(Result{Endpoint: "gone", Key: Key{Pos: 1}, Outcome: Dead, Attempt: Attempt{At: time.Now(), Status: 500}},
		Result{Endpoint: "gone", Key: Key{Pos: 2}, Outcome: Retry, Next: time.Now().Add(time.Hour), Attempt: Attempt{At: time.Now(), Status: 503}})
	mustFlush(t, o)
	ctx := context.Background()
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "a", Wants: all}}); err != nil {
		t.Fatal(err)
	}
	if f, err := o.Forget(ctx, "gone"); err != nil || f.Pending != 2 || f.DeadLetters != 1 {
		t.Fatalf("forget: %+v %v", f, err)
	}
	if got := allLog(t, o, LogQuery{Endpoint: "gone"}); len(got) != 2 {
		t.Errorf("the forgotten endpoint's attempts in the log: %d, want 2", len(got))
	}
	for pos := change.Position(1); pos <= 3; pos++ {
		if _, err := o.Event(mapping.EventID(pos, 0)); err != nil {
			t.Errorf("event %d after forget: %v (the log points at it)", pos, err)
		}
	}
	if _, err := o.Resend(ctx, ResendSelection{TicketID: 9}, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resend to a forgotten endpoint: %v", err)
	}
	o.SetLogLimits(LogLimits{Retention: -1, PruneInterval: 10 * time.Millisecond})
	waitLog(t, o, func(st LogStats) bool { return st.Entries == 0 })
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left once the log is gone", n)
	}
	o.Close()
	if rep := checkStore(t, path); len(rep.Warnings) > 0 {
		t.Errorf("check warnings: %v", rep.Warnings)
	}
}

// TestLogKeepsChunkedPayloads: a large event (its payload in chunks) that
// was delivered stays whole while the log points at it, counts its whole
// size in the log's, and goes with its chunks when the log is pruned.
func TestLogKeepsChunkedPayloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, logOpts(), Subscription{Name: "a", Wants: all})
	big := largeEvent(1, 0, 7, 3*payloadChunk+5, 3)
	mustAppend(t, o, 1, true, []mapping.Event{big})
	mustFlush(t, o)
	deliverAll(t, o, "a")
	ev, err := o.Event(big.ID)
	if err != nil || !bytes.Equal(ev.Payload, big.Payload) {
		t.Fatalf("the delivered large event: %d bytes, want %d (%v)", len(ev.Payload), len(big.Payload), err)
	}
	if st, _ := o.LogStats(); st.Bytes < int64(len(big.Payload)) {
		t.Errorf("log size %d does not count the %d-byte payload it keeps", st.Bytes, len(big.Payload))
	}
	if p, err := o.Events(EventQuery{TicketID: 7}); err != nil || len(p.Events) != 1 || p.Events[0].Size < len(big.Payload) {
		t.Errorf("the ticket's events: %+v %v", p, err)
	}
	o.SetLogLimits(LogLimits{Retention: -1, PruneInterval: 10 * time.Millisecond})
	waitLog(t, o, func(st LogStats) bool { return st.Entries == 0 && st.Bytes == 0 })
	if n, m := bucketLen(t, o, bucketEvents), bucketLen(t, o, bucketPayloads); n != 0 || m != 0 {
		t.Errorf("%d events and %d chunks left once the log is gone", n, m)
	}
	o.Close()
	checkStore(t, path)
}

// TestResendScanBounded: a resend by time range to an endpoint whose
// filter takes few of the range's events looks through at most
// maxResendScan stored events (inside the committer's transaction), then
// says to narrow the selection; a ticket's events are found as before.
func TestResendScanBounded(t *testing.T) {
	defer func(n int) { maxResendScan = n }(maxResendScan)
	maxResendScan = 20
	onlyTicket7 := func(e *mapping.Event) bool { return e.TicketID == 7 }
	// b takes every event, so all 40 are stored (and kept by the log).
	o := open(t, "", logOpts(), Subscription{Name: "a", Wants: onlyTicket7}, Subscription{Name: "b", Wants: all})
	for pos := change.Position(1); pos <= 40; pos++ {
		ticket := int64(pos)
		if pos == 40 {
			ticket = 7
		}
		mustAppend(t, o, pos, true, txn(pos, ticket))
	}
	mustFlush(t, o)
	deliverAll(t, o, "a")
	deliverAll(t, o, "b")
	ctx := context.Background()
	if res, err := o.Resend(ctx, ResendSelection{From: time.Unix(1700000000, 0)}, "a"); !errors.Is(err, ErrTooMany) ||
		!strings.Contains(err.Error(), "more than 20 stored events") {
		t.Errorf("resend of a range of 40 events, 1 for the endpoint: %+v %v; want ErrTooMany", res, err)
	}
	if res, err := o.Resend(ctx, ResendSelection{TicketID: 7}, "a"); err != nil || res.Events != 2 {
		t.Errorf("resend of ticket 7: %+v %v", res, err)
	}
}

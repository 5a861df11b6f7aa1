package mapping

// Unit tests of the mapper's own logic on hand-built batches, with an
// in-memory Source that counts what it is asked. The end-to-end behaviour
// on real replication is in golden_test.go and friends.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	ticketsT = change.NewTable("public", "tickets", []change.Column{
		{Name: "id", Type: "int8", Key: true}, {Name: "ticket_number", Type: "varchar"}, {Name: "user_id", Type: "int8"},
		{Name: "dept_id", Type: "int8"}, {Name: "team_id", Type: "int8"}, {Name: "status", Type: "int8"},
		{Name: "assigned_to", Type: "int8"}, {Name: "source", Type: "int8"}, {Name: "duedate", Type: "timestamp"},
		{Name: "updated_at", Type: "timestamp"},
	})
	threadsT = change.NewTable("public", "ticket_thread", []change.Column{
		{Name: "id", Type: "int8", Key: true}, {Name: "ticket_id", Type: "int8"}, {Name: "user_id", Type: "int8"},
		{Name: "thread_type", Type: "varchar"}, {Name: "poster", Type: "varchar"}, {Name: "is_internal", Type: "int2"},
		{Name: "body", Type: "text"},
	})
	usersT = change.NewTable("public", "users", []change.Column{
		{Name: "id", Type: "int8", Key: true}, {Name: "user_name", Type: "varchar"}, {Name: "first_name", Type: "varchar"},
		{Name: "last_name", Type: "varchar"}, {Name: "email", Type: "varchar"}, {Name: "password", Type: "varchar"},
		{Name: "email_verify", Type: "varchar"}, {Name: "profile_pic", Type: "varchar"},
	})
	statusT = change.NewTable("public", "ticket_status", []change.Column{
		{Name: "id", Type: "int8", Key: true}, {Name: "name", Type: "varchar"}, {Name: "purpose_of_status", Type: "int8"},
		{Name: "send_email", Type: "text"},
	})
	typesT = change.NewTable("public", "ticket_status_type", []change.Column{
		{Name: "id", Type: "int8", Key: true}, {Name: "name", Type: "varchar"},
	})
	otherT = change.NewTable("public", "audit_log", []change.Column{{Name: "id", Type: "int8"}})
)

// unchanged stands for a value the source did not send.
var unchanged = struct{}{}

func mkRow(t *change.Table, vals ...any) *change.Row {
	r := &change.Row{Table: t, Values: make([]change.Value, len(vals))}
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			r.Values[i] = change.Value{Kind: change.KindNull}
		case int:
			r.Values[i] = change.Value{Kind: change.KindInt, Int: int64(v), Text: fmt.Sprint(v)}
		case string:
			r.Values[i] = change.Value{Kind: change.KindText, Text: v}
		case time.Time:
			r.Values[i] = change.Value{Kind: change.KindTime, Time: v, Text: v.Format("2006-01-02 15:04:05")}
		case struct{}:
			r.Values[i] = change.Value{Kind: change.KindUnchanged}
		default:
			panic(fmt.Sprintf("mkRow: %T", v))
		}
	}
	return r
}

func ticketRow(id, user, dept, status int, assigned any) *change.Row {
	return mkRow(ticketsT, id, fmt.Sprintf("T-%d", id), user, dept, nil, status, assigned, 1, nil,
		time.Date(2022, 6, 16, 7, 0, 0, 0, time.UTC))
}

func threadRow(id, ticket, user int, poster string, internal int) *change.Row {
	return mkRow(threadsT, id, ticket, user, nil, poster, internal, fmt.Sprintf("<p>%d</p>", id))
}

func ins(r *change.Row) change.Change {
	return change.Change{Op: change.Insert, Table: r.Table, New: r}
}
func upd(old, new *change.Row) change.Change {
	return change.Change{Op: change.Update, Table: new.Table, Old: old, New: new}
}
func del(old *change.Row) change.Change {
	return change.Change{Op: change.Delete, Table: old.Table, Old: old}
}

func txn(pos int, changes ...change.Change) *change.Batch {
	return &change.Batch{Pos: change.Position(pos), Last: true, Changes: changes,
		CommitTime: time.Date(2022, 6, 16, 8, 0, 0, 0, time.UTC)}
}

// memSource is an in-memory Source that counts calls.
type memSource struct {
	rows      map[string]map[int64]*change.Row
	facts     map[int64]TicketFacts
	rowCalls  map[string]int
	rowIDs    map[string]int // ids asked, by table
	factCalls int
	fail      error
}

func newMemSource() *memSource {
	s := &memSource{rows: map[string]map[int64]*change.Row{}, facts: map[int64]TicketFacts{},
		rowCalls: map[string]int{}, rowIDs: map[string]int{}}
	for _, r := range []*change.Row{
		mkRow(usersT, 1, "admin", "ada", "admin", "ada@x.example", "secret-hash", "1", ""),
		mkRow(usersT, 5, "dave@x.example", "Dave", "", "dave@x.example", "secret-hash", "0", "pic.png"),
		mkRow(usersT, 6, "nobody", "", "", "", "secret-hash", nil, nil),
		mkRow(statusT, 1, "Open", 1, `{"client":"1","admin":0,"on":true}`),
		mkRow(statusT, 2, "Broken", 2, `{not json`),
		mkRow(typesT, 1, "open"), mkRow(typesT, 2, "closed"),
	} {
		s.put(r)
	}
	return s
}

func (s *memSource) put(r *change.Row) {
	id, _ := r.Int("id")
	if s.rows[r.Table.Name] == nil {
		s.rows[r.Table.Name] = map[int64]*change.Row{}
	}
	s.rows[r.Table.Name][id] = r
}

func (s *memSource) Rows(_ context.Context, table string, ids []int64) ([]*change.Row, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	s.rowCalls[table]++
	s.rowIDs[table] += len(ids)
	var out []*change.Row
	for _, id := range ids {
		if r, ok := s.rows[table][id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memSource) Aggregate(ctx context.Context, a Aggregate) (map[int64]AggregateRow, error) {
	return answerFacts(ctx, a, s.ticketFacts)
}

// answerFacts answers the mapping's facts Aggregate with what facts says
// of each ticket, laid out as a SQL source lays its answer out.
func answerFacts(ctx context.Context, a Aggregate, facts func(context.Context, []FactsQuery) (map[int64]TicketFacts, error)) (map[int64]AggregateRow, error) {
	qs := make([]FactsQuery, len(a.Keys))
	for i, k := range a.Keys {
		qs[i] = FactsQuery{TicketID: k.Value, MaxThreadID: k.Bound}
	}
	fs, err := facts(ctx, qs)
	if err != nil {
		return nil, err
	}
	posterT := change.NewTable("public", "ticket_thread", []change.Column{{Name: "poster"}})
	out := map[int64]AggregateRow{}
	for id, f := range fs {
		var firstID, lastID int64
		if f.FirstThread != nil {
			firstID, _ = f.FirstThread.Int("id")
		}
		r := AggregateRow{Rows: []*change.Row{f.FirstThread, nil}}
		if f.LastPoster != "" {
			lastID = max(firstID, 1)
			r.Rows[fetchPoster] = &change.Row{Table: posterT, Values: []change.Value{{Kind: change.KindText, Text: f.LastPoster}}}
		}
		r.Values = [][]int64{{f.ThreadCount, f.MaxThreadID, firstID, lastID}, {f.CollaboratorCount}, {f.AttachmentCount}}
		out[id] = r
	}
	return out, nil
}

func (s *memSource) ticketFacts(_ context.Context, qs []FactsQuery) (map[int64]TicketFacts, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	s.factCalls++
	out := map[int64]TicketFacts{}
	for _, q := range qs {
		if _, dup := out[q.TicketID]; dup {
			return nil, fmt.Errorf("ticket %d asked twice", q.TicketID)
		}
		out[q.TicketID] = s.facts[q.TicketID]
	}
	return out, nil
}

func newTestMapper(t testing.TB, src Source, mut func(*Config)) (*Mapper, *prometheus.Registry) {
	t.Helper()
	cfg := Config{AppKey: testAppKey}
	if mut != nil {
		mut(&cfg)
	}
	reg := prometheus.NewRegistry()
	m, err := New(cfg, src, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func mustMap(t testing.TB, m *Mapper, b *change.Batch) []Event {
	t.Helper()
	evs, err := m.Map(context.Background(), b)
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	for _, ev := range evs {
		if !json.Valid(ev.Payload) {
			t.Fatalf("%s payload is not JSON: %s", ev.Type, ev.Payload)
		}
	}
	return evs
}

func eventTypes(evs []Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Type)
	}
	return strings.Join(s, ",")
}

func TestMapCreatedAndReplies(t *testing.T) {
	src := newMemSource()
	m, reg := newTestMapper(t, src, nil)
	evs := mustMap(t, m, txn(100, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0))))
	if got := eventTypes(evs); got != TicketCreated {
		t.Fatalf("got %s", got)
	}
	if evs[0].ID != EventID(100, 0) || evs[0].TicketID != 1 || evs[0].DeptID != 1 || evs[0].SourceID != 1 {
		t.Errorf("event fields: %+v", evs[0])
	}
	p := string(evs[0].Payload)
	for _, want := range []string{`"thread_count":"1"`, `"collaborator_count":null`, `"poster":"client"`,
		`"full_name":"Dave"`, `"meta_name":"Dave <dave@x.example>"`, `"email_verified":"0"`} {
		if !strings.Contains(p, want) {
			t.Errorf("payload lacks %s: %s", want, p)
		}
	}
	evs = mustMap(t, m, txn(200,
		ins(threadRow(2, 1, 1, "support", 0)),                                   // reply
		ins(threadRow(3, 1, 1, "admin", 1)),                                     // internal note
		ins(mkRow(threadsT, 4, 1, 1, "ticket_assign_alert", "support", 1, "x")), // activity
		ins(threadRow(5, 1, 5, "client", 0)),                                    // commented
		ins(mkRow(threadsT, 6, 1, 1, "note", "support", 0, "x")),                // not a reply: thread_type note
	))
	if got := eventTypes(evs); got != TicketReply+","+TicketCommented {
		t.Fatalf("got %s", got)
	}
	reply := string(evs[0].Payload)
	for _, want := range []string{`"thread_count":"4"`, `"poster":"support"`, `"first_thread":{"id":"1"`,
		`"user":{"id":"1","user_name":"admin","first_name":"ada"`, `"full_name":"ada admin"`,
		`"profile_pic":"https://secure.gravatar.com/avatar/`} {
		if !strings.Contains(reply, want) {
			t.Errorf("reply lacks %s: %s", want, reply)
		}
	}
	if strings.Contains(reply, "secret-hash") || strings.Contains(reply, `"email_verify"`) {
		t.Errorf("hidden user columns leak: %s", reply)
	}
	if !strings.Contains(string(evs[1].Payload), `"profile_pic":"pic.png"`) {
		t.Errorf("a set profile_pic is shown as stored: %s", evs[1].Payload)
	}
	if n := testutil.ToFloat64(m.metrics.mappedVe.WithLabelValues(TicketReply)); n != 1 {
		t.Errorf("deskhook_events_mapped_total{event=ticket_reply} = %v", n)
	}
	if n, err := testutil.GatherAndCount(reg, "deskhook_events_mapped_total"); err != nil || n != len(AllEvents) {
		t.Errorf("mapped counter series: %d, %v", n, err)
	}
	// Users were read from the source once each, then kept.
	if src.rowIDs["users"] != 2 {
		t.Errorf("users looked up %d times, want 2 (1 and 5, once each)", src.rowIDs["users"])
	}
}

func TestMapUpdateTriggersInContractOrder(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, func(c *Config) { c.TeamAssignment = true })
	mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0))))
	old := ticketRow(1, 5, 1, 1, nil)
	now := mkRow(ticketsT, 1, "T-1", 6, 2, nil, 2, 1, 1, time.Date(2022, 7, 1, 0, 0, 0, 0, time.UTC), time.Now())
	evs := mustMap(t, m, txn(2, upd(old, now)))
	want := strings.Join([]string{TicketStatusUpdated, TicketDepartmentUpdated, TicketAssigned, TicketOwnerUpdated,
		TicketDueDateUpdated}, ",")
	if got := eventTypes(evs); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	for i, ev := range evs {
		if ev.Index != uint32(i) || ev.ID != EventID(2, uint32(i)) {
			t.Errorf("event %d: index %d id %s", i, ev.Index, ev.ID)
		}
	}
	st := string(evs[0].Payload)
	if !strings.Contains(st, `"statuses":{"id":"2","name":"Broken","purpose_of_status":"2","send_email":null,"type":{"id":"2","name":"closed"}}`) {
		t.Errorf("statuses: %s", st)
	}
	if !strings.HasPrefix(string(evs[1].Payload), `{"event":"ticket_department_updated","thread":{"id":"1"`) {
		t.Errorf("department payload: %s", evs[1].Payload[:80])
	}
	// Team assignment, and an update that changes nothing relevant.
	old, now = now, mkRow(ticketsT, 1, "T-1", 6, 2, 3, 2, nil, 1, time.Date(2022, 7, 1, 0, 0, 0, 0, time.UTC), time.Now())
	if got := eventTypes(mustMap(t, m, txn(3, upd(old, now)))); got != TicketAssigned {
		t.Errorf("team assignment: %s", got)
	}
	if got := eventTypes(mustMap(t, m, txn(4, upd(now, now)))); got != "" {
		t.Errorf("no-op update fired %s", got)
	}
	// Without the old row the state's row is the old side.
	next := mkRow(ticketsT, 1, "T-1", 6, 2, 3, 1, nil, 1, time.Date(2022, 7, 1, 0, 0, 0, 0, time.UTC), time.Now())
	if got := eventTypes(mustMap(t, m, txn(5, change.Change{Op: change.Update, Table: ticketsT, New: next}))); got != TicketStatusUpdated {
		t.Errorf("update without old row: %s", got)
	}
}

func TestMapStatusSendEmailExpanded(t *testing.T) {
	src := newMemSource()
	m, reg := newTestMapper(t, src, nil)
	mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 2, nil)), ins(threadRow(1, 1, 5, "client", 0))))
	evs := mustMap(t, m, txn(2, upd(ticketRow(1, 5, 1, 2, nil), ticketRow(1, 5, 1, 1, nil))))
	if !strings.Contains(string(evs[0].Payload), `"send_email":{"client":"1","admin":"0","on":"1"}`) {
		t.Errorf("send_email not expanded: %s", evs[0].Payload)
	}
	evs = mustMap(t, m, txn(3, upd(ticketRow(1, 5, 1, 1, nil), ticketRow(1, 5, 1, 2, nil))))
	if !strings.Contains(string(evs[0].Payload), `"send_email":null`) {
		t.Errorf("invalid send_email not null: %s", evs[0].Payload)
	}
	if n := testutil.ToFloat64(m.metrics.badRows.WithLabelValues("ticket_status")); n != 1 {
		t.Errorf("bad rows for ticket_status = %v", n)
	}
	_ = reg
}

func TestMapBadRowsAreSkipped(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, nil)
	noID := change.NewTable("public", "tickets", []change.Column{{Name: "ticket_number", Type: "varchar"}})
	evs := mustMap(t, m, txn(1,
		ins(mkRow(noID, "T-x")),                                               // no id column
		ins(mkRow(threadsT, 9, "abc", 5, nil, "client", 0, "x")),              // unparsable ticket_id
		ins(mkRow(threadsT, nil, 1, 5, nil, "client", 0, "x")),                // null id
		ins(mkRow(usersT, "x", "u", "f", "l", "e", "p", "1", nil)),            // non-numeric user id
		ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0)), // fine
		ins(mkRow(otherT, 1)), // a table the mapper does not read
	))
	if got := eventTypes(evs); got != TicketCreated {
		t.Fatalf("got %q", got)
	}
	total := 0.0
	for _, tbl := range []string{"tickets", "ticket_thread", "users"} {
		total += testutil.ToFloat64(m.metrics.badRows.WithLabelValues(tbl))
	}
	if total != 4 {
		t.Errorf("bad rows counted: %v, want 4", total)
	}
}

func TestMapChunkIndexesAndRetry(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, nil)
	chunk := func(seq int, last bool, changes ...change.Change) *change.Batch {
		b := txn(7, changes...)
		b.Seq, b.Last = seq, last
		return b
	}
	c0 := chunk(0, false, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0)))
	c1 := chunk(1, true, ins(ticketRow(2, 5, 1, 1, nil)), ins(threadRow(2, 2, 5, "client", 0)),
		ins(threadRow(3, 1, 1, "support", 0)))
	e0 := mustMap(t, m, c0)
	e1 := mustMap(t, m, c1)
	if len(e0) != 1 || len(e1) != 2 || e0[0].Index != 0 || e1[0].Index != 1 || e1[1].Index != 2 {
		t.Fatalf("indexes across chunks: %v %v", e0, e1)
	}
	// The same chunk again (the consumer retried) numbers the same way and
	// counts nothing twice.
	again := mustMap(t, m, c1)
	if len(again) != 2 || again[0].ID != e1[0].ID || string(again[1].Payload) != string(e1[1].Payload) {
		t.Fatalf("retried chunk differs:\n%s\n%s", again[1].Payload, e1[1].Payload)
	}
	// A new transaction starts at 0.
	if e := mustMap(t, m, txn(8, ins(threadRow(4, 2, 1, "support", 0)))); e[0].Index != 0 || e[0].ID != EventID(8, 0) {
		t.Errorf("new transaction: %+v", e[0])
	}
}

func TestMapNeverSeenTicketFetchedOnce(t *testing.T) {
	src := newMemSource()
	src.put(ticketRow(40, 5, 2, 1, nil))
	src.facts[40] = TicketFacts{FirstThread: threadRow(400, 40, 5, "client", 0), ThreadCount: 3, LastPoster: "support",
		MaxThreadID: 402, CollaboratorCount: 2, AttachmentCount: 1}
	m, _ := newTestMapper(t, src, nil)
	// A thread the source already counted (id <= MaxThreadID) is not
	// counted again; later ones are.
	evs := mustMap(t, m, txn(1, ins(threadRow(402, 40, 1, "support", 0)), ins(threadRow(403, 40, 5, "client", 0))))
	if got := eventTypes(evs); got != TicketReply+","+TicketCommented {
		t.Fatalf("got %s", got)
	}
	p := string(evs[0].Payload)
	for _, want := range []string{`"thread_count":"4"`, `"collaborator_count":"2"`, `"attachment_count":"1"`,
		`"poster":"client"`, `"first_thread":{"id":"400"`} {
		if !strings.Contains(p, want) {
			t.Errorf("payload lacks %s", want)
		}
	}
	mustMap(t, m, txn(2, ins(threadRow(404, 40, 1, "support", 0))))
	if src.factCalls != 1 || src.rowIDs["tickets"] != 1 {
		t.Errorf("source asked %d times for facts and %d tickets, want once each", src.factCalls, src.rowIDs["tickets"])
	}
	// A first thread of a ticket the source knows without threads.
	src.put(ticketRow(41, 6, 1, 1, nil))
	if got := eventTypes(mustMap(t, m, txn(3, ins(threadRow(500, 41, 6, "client", 0))))); got != TicketCreated {
		t.Errorf("first thread of a never-seen ticket: %s", got)
	}
	// A thread of a ticket the source does not have: nothing, no error.
	if got := eventTypes(mustMap(t, m, txn(4, ins(threadRow(501, 99, 6, "client", 0))))); got != "" {
		t.Errorf("thread of a missing ticket: %s", got)
	}
}

// TestMapIDsSurviveATicketGoneOnReplay: after a crash a transaction is
// mapped again by a fresh mapper, from the source as it is then. A ticket
// deleted in between fires nothing any more, and the events after its
// trigger must keep the ids they had (a receiver may have them already).
func TestMapIDsSurviveATicketGoneOnReplay(t *testing.T) {
	src := newMemSource()
	src.put(ticketRow(40, 5, 2, 1, nil))
	src.put(ticketRow(41, 5, 2, 1, nil))
	src.facts[40] = TicketFacts{FirstThread: threadRow(400, 40, 5, "client", 0), ThreadCount: 1, MaxThreadID: 400}
	src.facts[41] = TicketFacts{FirstThread: threadRow(410, 41, 5, "client", 0), ThreadCount: 1, MaxThreadID: 410}
	b := txn(9, ins(threadRow(401, 40, 1, "support", 0)), ins(threadRow(411, 41, 1, "support", 0)))
	first, _ := newTestMapper(t, src, nil)
	before := mustMap(t, first, b)
	if len(before) != 2 || before[1].TicketID != 41 {
		t.Fatalf("first mapping: %v", eventTypes(before))
	}
	delete(src.rows["tickets"], 40)
	delete(src.facts, 40)
	replay, _ := newTestMapper(t, src, nil)
	after := mustMap(t, replay, b)
	if len(after) != 1 || after[0].TicketID != 41 {
		t.Fatalf("replay: %d events %v, want ticket 41's reply alone", len(after), eventTypes(after))
	}
	if after[0].ID != before[1].ID || after[0].Index != before[1].Index {
		t.Errorf("ticket 41's reply was %s (index %d), is %s (index %d) on replay",
			before[1].ID, before[1].Index, after[0].ID, after[0].Index)
	}
}

func TestMapDeletedTicketsFireNothing(t *testing.T) {
	m, _ := newTestMapper(t, newMemSource(), nil)
	evs := mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0)),
		upd(ticketRow(1, 5, 1, 1, nil), ticketRow(1, 5, 1, 2, nil)), del(ticketRow(1, 5, 1, 2, nil))))
	if len(evs) != 0 {
		t.Fatalf("deleted ticket fired %s", eventTypes(evs))
	}
	evs = mustMap(t, m, txn(2, ins(ticketRow(2, 5, 1, 1, nil)), ins(threadRow(2, 2, 5, "client", 0)),
		change.Change{Op: change.Truncate, Table: ticketsT}))
	if len(evs) != 0 {
		t.Fatalf("truncated ticket fired %s", eventTypes(evs))
	}
}

func TestMapStateBoundedAndCurrent(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, func(c *Config) { c.StateSize = 2 })
	for id := 1; id <= 5; id++ {
		mustMap(t, m, txn(id, ins(ticketRow(id, 5, 1, 1, nil)), ins(threadRow(id, id, 5, "client", 0))))
		src.put(ticketRow(id, 5, 1, 1, nil))
		src.facts[int64(id)] = TicketFacts{FirstThread: threadRow(id, id, 5, "client", 0), ThreadCount: 1,
			LastPoster: "client", MaxThreadID: int64(id)}
	}
	if m.tickets.len() != 2 || m.users.len() > 2 {
		t.Fatalf("state holds %d tickets, %d users; bound 2", m.tickets.len(), m.users.len())
	}
	// Ticket 1 was evicted: a reply reads it again, and shows the stream's
	// latest user rather than a stale one.
	mustMap(t, m, txn(10, ins(mkRow(usersT, 5, "dave@x.example", "David", "", "dave@x.example", "h", "1", ""))))
	evs := mustMap(t, m, txn(11, ins(threadRow(10, 1, 5, "client", 0))))
	if got := eventTypes(evs); got != TicketCommented {
		t.Fatalf("got %s", got)
	}
	if !strings.Contains(string(evs[0].Payload), `"first_name":"David"`) || !strings.Contains(string(evs[0].Payload), `"thread_count":"2"`) {
		t.Errorf("payload after eviction: %s", evs[0].Payload)
	}
	if src.factCalls != 1 {
		t.Errorf("facts read %d times, want 1", src.factCalls)
	}
	// A user update the stream sends incompletely is dropped, not served.
	mustMap(t, m, txn(12, upd(nil, mkRow(usersT, 5, "dave@x.example", "Dee", "", "dave@x.example", unchanged, "1", ""))))
	src.put(mkRow(usersT, 5, "dave@x.example", "Dee", "", "dave@x.example", "h", "1", ""))
	evs = mustMap(t, m, txn(13, ins(threadRow(11, 1, 5, "client", 0))))
	if !strings.Contains(string(evs[0].Payload), `"first_name":"Dee"`) {
		t.Errorf("incomplete user row served from state: %s", evs[0].Payload)
	}
}

func TestMapSourceErrorStopsBatch(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, nil)
	src.fail = errors.New("connection refused")
	_, err := m.Map(context.Background(), txn(1, ins(threadRow(1, 77, 5, "client", 0))))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Map error = %v", err)
	}
	src.fail = nil
	src.put(ticketRow(77, 5, 1, 1, nil))
	if got := eventTypes(mustMap(t, m, txn(1, ins(threadRow(1, 77, 5, "client", 0))))); got != TicketCreated {
		t.Errorf("after the source recovered: %s", got)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{AppKey: "base64:short"}, newMemSource(), Options{}); err == nil ||
		!strings.Contains(err.Error(), "faveo.app_key") {
		t.Errorf("bad app key: %v", err)
	}
	if _, err := New(Config{StateBytes: 1000}, newMemSource(), Options{}); err == nil ||
		!strings.Contains(err.Error(), "faveo.state_bytes: must be at least 1048576 (got 1000)") {
		t.Errorf("tiny state_bytes: %v", err)
	}
	if _, err := New(Config{}, nil, Options{}); err == nil {
		t.Error("nil source accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, newMemSource(), Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, newMemSource(), Options{Registerer: reg}); err == nil {
		t.Error("registering twice on one registry did not fail")
	}
	m, err := New(Config{}, newMemSource(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0))))
	if strings.Contains(string(evs[0].Payload), "encrypted_id") {
		t.Error("encrypted_id without an app key")
	}
}

func TestEventID(t *testing.T) {
	for _, tc := range []struct {
		pos   change.Position
		index uint32
	}{{0, 0}, {1, 7}, {0x16B3F28, 42}, {1<<64 - 1, 1<<32 - 1}, {0xABCDEF0123456789, 9999}, {5, 10000}} {
		if got, want := EventID(tc.pos, tc.index), fmt.Sprintf("evt_%016x_%04d", uint64(tc.pos), tc.index); got != want {
			t.Errorf("EventID(%d, %d) = %s, want %s", tc.pos, tc.index, got, want)
		}
	}
}

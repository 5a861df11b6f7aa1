package mapping

import (
	"context"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

// fullTicketsT and fullThreadsT have Faveo's real column sets, so the
// benchmark renders rows of realistic width.
var (
	fullTicketsT = func() *change.Table {
		var cols []change.Column
		for _, c := range []string{"id:int8", "ticket_number:varchar", "user_id:int8", "dept_id:int8", "team_id:int8",
			"priority_id:int8", "sla:int8", "help_topic_id:int8", "status:int8", "rating:int2", "ratingreply:int2",
			"flags:int4", "ip_address:int4", "assigned_to:int8", "lock_by:int4", "lock_at:timestamp", "source:int8",
			"isoverdue:int4", "reopened:int4", "isanswered:int4", "html:int4", "is_deleted:int4", "closed:int4",
			"is_transferred:int2", "transferred_at:timestamp", "reopened_at:timestamp", "duedate:timestamp",
			"closed_at:timestamp", "last_message_at:timestamp", "first_response_time:timestamp", "created_at:timestamp",
			"updated_at:timestamp", "type:int8", "location_id:int8", "creator_id:int8", "response_due_by:timestamp",
			"is_manual_duedate:int2", "resolution_due_by:timestamp", "parent_id:int8", "status_changed_at:timestamp",
			"assigned_at:timestamp"} {
			name, typ, _ := cut(c)
			cols = append(cols, change.Column{Name: name, Type: typ})
		}
		return change.NewTable("public", "tickets", cols)
	}()
	fullThreadsT = change.NewTable("public", "ticket_thread", []change.Column{
		{Name: "id", Type: "int8"}, {Name: "ticket_id", Type: "int8"}, {Name: "user_id", Type: "int8"},
		{Name: "thread_type", Type: "varchar"}, {Name: "poster", Type: "varchar"}, {Name: "source", Type: "int8"},
		{Name: "reply_rating", Type: "int4"}, {Name: "rating_count", Type: "int4"}, {Name: "is_internal", Type: "int2"},
		{Name: "title", Type: "varchar"}, {Name: "body", Type: "text"}, {Name: "format", Type: "varchar"},
		{Name: "ip_address", Type: "varchar"}, {Name: "response_time", Type: "int4"}, {Name: "created_at", Type: "timestamp"},
		{Name: "updated_at", Type: "timestamp"},
	})
)

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func benchTicket(id int64, status int64, at time.Time) *change.Row {
	r := &change.Row{Table: fullTicketsT, Values: make([]change.Value, len(fullTicketsT.Columns))}
	for i, c := range fullTicketsT.Columns {
		switch c.Type {
		case "int8", "int4", "int2":
			r.Values[i] = change.Value{Kind: change.KindInt, Int: 0, Text: "0"}
		case "timestamp":
			r.Values[i] = change.Value{Kind: change.KindNull}
		default:
			r.Values[i] = change.Value{Kind: change.KindText, Text: "AAAA-0000-0001"}
		}
	}
	set := func(col string, v change.Value) { r.Values[fullTicketsT.Col(col)] = v }
	set("id", change.Value{Kind: change.KindInt, Int: id})
	set("user_id", change.Value{Kind: change.KindInt, Int: 5})
	set("dept_id", change.Value{Kind: change.KindInt, Int: 1})
	set("status", change.Value{Kind: change.KindInt, Int: status})
	set("source", change.Value{Kind: change.KindInt, Int: 1})
	set("created_at", change.Value{Kind: change.KindTime, Time: at})
	set("updated_at", change.Value{Kind: change.KindTime, Time: at})
	set("duedate", change.Value{Kind: change.KindTime, Time: at.Add(5 * time.Hour)})
	return r
}

func benchThread(id, ticket, user int64, poster string, at time.Time) *change.Row {
	v := func(n int64) change.Value { return change.Value{Kind: change.KindInt, Int: n} }
	s := func(x string) change.Value { return change.Value{Kind: change.KindText, Text: x} }
	null := change.Value{Kind: change.KindNull}
	ts := change.Value{Kind: change.KindTime, Time: at}
	return &change.Row{Table: fullThreadsT, Values: []change.Value{v(id), v(ticket), v(user), null, s(poster), null,
		v(0), v(0), v(0), s("Printer on fire"), s("<p>It is on fire &amp; smoking. Please help, it is urgent.</p>"),
		s(""), s(""), null, ts, ts}}
}

// benchWorkload is the perf issue's backlog per ticket: created, two
// replies, two updates — five events in five transactions.
func benchWorkload(ticket int64, thread *int64) []*change.Batch {
	at := time.Date(2022, 6, 16, 7, 0, 0, 0, time.UTC)
	next := func() int64 { *thread++; return *thread }
	t0 := benchTicket(ticket, 1, at)
	t1 := benchTicket(ticket, 1, at.Add(time.Minute))
	t2 := benchTicket(ticket, 9, at.Add(2*time.Minute))
	t3 := benchTicket(ticket, 3, at.Add(3*time.Minute))
	tx := func(changes ...change.Change) *change.Batch {
		return &change.Batch{Pos: change.Position(ticket*10 + int64(len(changes))), Last: true, Changes: changes}
	}
	return []*change.Batch{
		tx(ins(t0), ins(benchThread(next(), ticket, 5, "client", at))),
		tx(ins(benchThread(next(), ticket, 2, "support", at)), upd(t0, t1)),
		tx(ins(benchThread(next(), ticket, 5, "client", at)), upd(t1, t1)),
		tx(upd(t1, t2)),
		tx(upd(t2, t3)),
	}
}

// BenchmarkMap maps the backlog workload; ns/op and allocs/op are per
// event (b.N events).
func BenchmarkMap(b *testing.B) {
	src := newMemSource()
	m, err := New(Config{AppKey: testAppKey}, src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var batches []*change.Batch
	var thread int64
	for t := int64(1); t <= 2000; t++ {
		batches = append(batches, benchWorkload(t, &thread)...)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; events < b.N; i++ {
		evs, err := m.Map(ctx, batches[i%len(batches)])
		if err != nil {
			b.Fatal(err)
		}
		events += len(evs)
	}
}

// BenchmarkMapAndRenderForm adds the faveo-form rendering each event gets
// at send time.
func BenchmarkMapAndRenderForm(b *testing.B) {
	src := newMemSource()
	m, err := New(Config{AppKey: testAppKey}, src, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var batches []*change.Batch
	var thread int64
	for t := int64(1); t <= 2000; t++ {
		batches = append(batches, benchWorkload(t, &thread)...)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; events < b.N; i++ {
		evs, err := m.Map(ctx, batches[i%len(batches)])
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			if _, _, err := Render(FormatForm, ev.Payload); err != nil {
				b.Fatal(err)
			}
		}
		events += len(evs)
	}
}

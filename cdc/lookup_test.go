package cdc

// Tests of Lookup against real PostgreSQL. Helpers here are prefixed
// "lookup" so they do not collide with the reader's test fixtures.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// lookupTypesTable has a column of every kind decodeValue distinguishes.
const lookupTypesTable = `CREATE TABLE lookup_types (
	id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, b boolean, n numeric(10,2), f4 real, f8 double precision,
	d date, ts timestamp(0), tsf timestamp(6), tstz timestamptz, by bytea, j json, jb jsonb, t text, v varchar(10),
	arr int[], bc date, inf timestamp, nul text)`

const lookupTypesRow = `INSERT INTO lookup_types VALUES (1, -2, 4, 9223372036854775807, true, 12.50, 1.5, 0.1,
	'2022-06-16', '2022-06-16 07:52:32', '2022-06-16 07:52:32.123456', '2022-06-16 09:52:32+02', '\x0102ff',
	'{"a": 1}', '{"b": [1, 2]}', 'tëxt', 'v', '{1,2}', '0044-03-15 BC', 'infinity', NULL)`

func lookupCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// lookupConfig is a Config for db whose departments table is
// lookup_types, so that the stream publishes it too.
func lookupConfig(t testing.TB, db *testenv.DB) Config {
	cfg := Defaults()
	cfg.DSN = db.DSN
	cfg.Slot = fmt.Sprintf("lookup_%d", time.Now().UnixNano()%1e12)
	cfg.Publication = cfg.Slot
	cfg.Tables.Departments = "lookup_types"
	return cfg
}

// lookupStreamed sets up replication, runs write, and returns the new rows
// the stream delivered, by table, until it sees want of them.
func lookupStreamed(t *testing.T, db *testenv.DB, cfg Config, want int, write func()) map[string][]*change.Row {
	t.Helper()
	ctx := lookupCtx(t)
	if _, err := Setup(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := Teardown(context.Background(), cfg); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	write()
	var mu sync.Mutex
	got := map[string][]*change.Row{}
	n := 0
	done := make(chan struct{})
	r := NewReader(cfg, ReaderOptions{FinalAckWait: -1})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- r.Run(runCtx, HandlerFunc(func(_ context.Context, b *change.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range b.Changes {
				if c.New != nil {
					got[c.Table.Name] = append(got[c.Table.Name], c.New)
					if n++; n == want {
						close(done)
					}
				}
			}
			r.Ack(b.Pos)
			return nil
		}))
	}()
	select {
	case <-done:
	case err := <-errc:
		t.Fatalf("reader stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("timed out waiting for the stream")
	}
	cancel()
	<-errc
	mu.Lock()
	defer mu.Unlock()
	return got
}

// lookupShow prints a row's columns and values. Column.Key is left out: the
// stream marks the replica identity (every column of tickets, which is
// FULL), Lookup the primary key.
func lookupShow(r *change.Row) string {
	var sb strings.Builder
	for i, c := range r.Table.Columns {
		v := r.Values[i]
		fmt.Fprintf(&sb, "%s %s: kind=%d text=%q int=%d float=%v time=%s\n", c.Name, c.Type,
			v.Kind, v.Text, v.Int, v.Float, v.Time.UTC().Format(time.RFC3339Nano))
	}
	return sb.String()
}

// TestLookupRowsDecodeLikeTheStream: a row read by Lookup is the row the
// stream delivered, value for value (kinds, text, typed fields), for every
// kind of column and for Faveo's own tables.
func TestLookupRowsDecodeLikeTheStream(t *testing.T) {
	db := testenv.Postgres(t)
	db.Exec(t, lookupTypesTable)
	cfg := lookupConfig(t, db)
	hd := testenv.NewHelpdesk(db.Pool(t))
	var w testenv.Write
	streamed := lookupStreamed(t, db, cfg, 3, func() {
		db.Exec(t, lookupTypesRow)
		var err error
		if w, err = hd.CreateTicket(lookupCtx(t), testenv.NewTicket{}); err != nil {
			t.Fatal(err)
		}
	})
	l, err := NewLookup(lookupCtx(t), cfg, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for table, id := range map[string]int64{"lookup_types": 1, "tickets": w.TicketID, "ticket_thread": w.ThreadID} {
		rows, err := l.Rows(lookupCtx(t), table, []int64{id, 424242})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || len(streamed[table]) != 1 {
			t.Fatalf("%s: looked up %d rows, streamed %d", table, len(rows), len(streamed[table]))
		}
		if got, want := lookupShow(rows[0]), lookupShow(streamed[table][0]); got != want {
			t.Errorf("%s: looked-up row differs from the streamed one:\n%s\nstreamed:\n%s", table, got, want)
		}
	}
	// The kinds themselves, for the types table.
	rows, _ := l.Rows(lookupCtx(t), "lookup_types", []int64{1})
	kinds := map[string]change.Kind{"i2": change.KindInt, "i8": change.KindInt, "b": change.KindBool,
		"n": change.KindFloat, "f8": change.KindFloat, "d": change.KindTime, "tstz": change.KindTime,
		"by": change.KindBytes, "j": change.KindText, "arr": change.KindText, "bc": change.KindText,
		"inf": change.KindText, "nul": change.KindNull}
	for col, want := range kinds {
		if v, _ := rows[0].Get(col); v.Kind != want {
			t.Errorf("%s: kind %d, want %d (%q)", col, v.Kind, want, v.Text)
		}
	}
	// Rows of one table share one *change.Table while its shape holds.
	again, _ := l.Rows(lookupCtx(t), "lookup_types", []int64{1})
	if again[0].Table != rows[0].Table {
		t.Error("a new *change.Table for the same shape")
	}
	if none, err := l.Rows(lookupCtx(t), "tickets", nil); err != nil || none != nil {
		t.Errorf("no ids: %v, %v", none, err)
	}
	if _, err := l.Rows(lookupCtx(t), "no_such_table", []int64{1}); err == nil ||
		!strings.Contains(err.Error(), "public.no_such_table") {
		t.Errorf("missing table: %v", err)
	}
}

// TestLookupTicketFacts: the mapping's facts read (Faveo's counting rules,
// written as a mapping.Aggregate) answered by Lookup.Aggregate on a real
// helpdesk.
func TestLookupTicketFacts(t *testing.T) {
	db := testenv.Postgres(t)
	cfg := Defaults()
	cfg.DSN = db.DSN
	ctx := lookupCtx(t)
	hd := testenv.NewHelpdesk(db.Pool(t))
	must := func(w testenv.Write, err error) testenv.Write {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	a := must(hd.CreateTicket(ctx, testenv.NewTicket{}))
	must(hd.InternalNote(ctx, a.TicketID, testenv.AgentAlice, "note"))
	reply := must(hd.AgentReply(ctx, a.TicketID, testenv.AgentAlice, "reply"))
	client := must(hd.ClientReply(ctx, a.TicketID, testenv.ClientDave, "more"))
	assign := must(hd.AssignAgent(ctx, a.TicketID, testenv.AgentBob, testenv.AdminID))
	// Faveo counts only collaborators whose user has an email
	// (Tickets::collaboratorCountRelation): users 100 and 101 have none.
	db.Exec(t, `INSERT INTO users (id, user_name, email) VALUES (100, 'no_email', NULL), (101, 'blank_email', '')`)
	for _, u := range []int64{testenv.ClientErin, testenv.ClientGrace, 100, 101} {
		if _, err := hd.AddCollaborator(ctx, a.TicketID, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, th := range []int64{a.ThreadID, reply.ThreadID, client.ThreadID} {
		if _, err := hd.AddAttachment(ctx, th, "f.txt", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	b := must(hd.CreateTicket(ctx, testenv.NewTicket{}))

	l, err := NewLookup(ctx, cfg, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	facts, err := mapping.ReadTicketFacts(ctx, l, cfg.Tables, factsQueries(0, a.TicketID, b.TicketID, 999))
	if err != nil {
		t.Fatal(err)
	}
	fa := facts[a.TicketID]
	if id, _ := fa.FirstThread.Int("id"); id != a.ThreadID || fa.ThreadCount != 3 || fa.LastPoster != "client" ||
		fa.MaxThreadID != assign.ThreadID || fa.CollaboratorCount != 2 || fa.AttachmentCount != 3 {
		t.Errorf("ticket a: first %d, %+v", id, fa)
	}
	if fb := facts[b.TicketID]; fb.ThreadCount != 1 || fb.LastPoster != "client" || fb.FirstThread == nil {
		t.Errorf("ticket b: %+v", fb)
	}
	if f, ok := facts[999]; !ok || f.FirstThread != nil || f.ThreadCount != 0 || f.MaxThreadID != 0 {
		t.Errorf("missing ticket: %+v, %v", f, ok)
	}
	// Bounded to the threads the stream has delivered: up to the reply.
	facts, err = mapping.ReadTicketFacts(ctx, l, cfg.Tables, factsQueries(reply.ThreadID, a.TicketID, b.TicketID))
	if err != nil {
		t.Fatal(err)
	}
	if fa := facts[a.TicketID]; fa.ThreadCount != 2 || fa.LastPoster != "support" || fa.MaxThreadID != reply.ThreadID ||
		fa.AttachmentCount != 2 || fa.CollaboratorCount != 2 {
		t.Errorf("ticket a up to thread %d: %+v", reply.ThreadID, fa)
	}
	if fb := facts[b.TicketID]; fb.ThreadCount != 0 || fb.FirstThread != nil {
		t.Errorf("ticket b's thread is after the bound: %+v", fb)
	}
	// Each ticket with its own bound, in one statement; a ticket asked
	// twice counts once, for its first query.
	facts, err = mapping.ReadTicketFacts(ctx, l, cfg.Tables, []mapping.FactsQuery{{TicketID: a.TicketID, MaxThreadID: reply.ThreadID},
		{TicketID: b.TicketID}, {TicketID: a.TicketID}})
	if err != nil {
		t.Fatal(err)
	}
	if fa, fb := facts[a.TicketID], facts[b.TicketID]; fa.ThreadCount != 2 || fa.AttachmentCount != 2 ||
		fb.ThreadCount != 1 || fb.FirstThread == nil || len(facts) != 2 {
		t.Errorf("per-ticket bounds: a %+v, b %+v (%d tickets)", fa, fb, len(facts))
	}
	// The first thread decodes as the stream would send it (cf.
	// TestLookupRowsDecodeLikeTheStream): as Rows reads it.
	rows, err := l.Rows(ctx, cfg.Tables.Threads, []int64{a.ThreadID})
	if err != nil || len(rows) != 1 {
		t.Fatalf("Rows: %v", err)
	}
	if got, want := lookupShow(facts[a.TicketID].FirstThread), lookupShow(rows[0]); got != want {
		t.Errorf("first thread from the facts:\n%s\nfrom Rows:\n%s", got, want)
	}
	// A collaborator table that is not there: the error names it.
	missing := cfg
	missing.Tables.Collaborators = "no_such_table"
	l3, err := NewLookup(ctx, missing, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	if _, err := mapping.ReadTicketFacts(ctx, l3, missing.Tables, factsQueries(0, a.TicketID)); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("missing collaborator table: %v", err)
	}
	// A thread table laid out otherwise than Faveo's, whose first column
	// is NULL: the first thread is still found.
	db.Exec(t, `CREATE TABLE custom_threads (remark text, LIKE ticket_thread INCLUDING ALL)`)
	db.Exec(t, `INSERT INTO custom_threads SELECT NULL, * FROM ticket_thread`)
	custom := cfg
	custom.Tables.Threads = "custom_threads"
	l4, err := NewLookup(ctx, custom, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	f, err := mapping.ReadTicketFacts(ctx, l4, custom.Tables, factsQueries(0, a.TicketID))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := f[a.TicketID].FirstThread.Int("id"); id != a.ThreadID || f[a.TicketID].ThreadCount != 3 {
		t.Errorf("custom thread table with a NULL first column: first thread %d (want %d), %+v", id, a.ThreadID, f[a.TicketID])
	}
}

func factsQueries(mark int64, ids ...int64) []mapping.FactsQuery {
	qs := make([]mapping.FactsQuery, len(ids))
	for i, id := range ids {
		qs[i] = mapping.FactsQuery{TicketID: id, MaxThreadID: mark}
	}
	return qs
}

func TestNewLookupBadDSN(t *testing.T) {
	cfg := Defaults()
	cfg.DSN = "postgres://u:hunter2@[::1"
	_, err := NewLookup(context.Background(), cfg, LookupOptions{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad DSN: %v", err)
	}
}

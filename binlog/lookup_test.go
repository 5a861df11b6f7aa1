package binlog

import (
	"context"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// A row read by primary key renders exactly as the stream rendered it:
// the same text and the same Kind and typed value in every column, also in
// a time zone other than the server's, for Faveo's tables and every
// column type.
func TestLookupRendersLikeTheStream(t *testing.T) {
	db := testenv.MariaDB(t)
	db.Exec(t, allTypes)
	cfg := testConfig(db)
	cfg.Tables.Departments = "all_types"
	cfg.TimeZone = "+05:30"
	run := startReader(t, cfg, "", nil)
	ctx := context.Background()
	if _, err := testenv.LoadMySQL(ctx, db.Pool(t), testenv.LoadConfig{Tickets: 5, Replies: 2, Updates: 2, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	for _, q := range allTypesRows {
		db.Exec(t, q)
	}
	m := mark(t, db)
	bs := run.c.waitFor(t, "the marker", time.Minute, sawMarker(m))
	latest := map[string]map[int64]*change.Row{}
	for _, b := range bs {
		for _, c := range b.Changes {
			if c.New == nil {
				continue
			}
			id, _ := c.New.Int("id")
			if latest[c.Table.Name] == nil {
				latest[c.Table.Name] = map[int64]*change.Row{}
			}
			latest[c.Table.Name][id] = c.New
		}
	}
	l, err := NewLookup(ctx, cfg, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := 0
	for table, byID := range latest {
		var ids []int64
		for id := range byID {
			ids = append(ids, id)
		}
		rows, err := l.Rows(ctx, table, append(ids, 999999))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(ids) {
			t.Fatalf("%s: %d rows for %d ids", table, len(rows), len(ids))
		}
		for _, r := range rows {
			id, _ := r.Int("id")
			s := byID[id]
			for i, col := range s.Table.Columns {
				got, ok := r.Get(col.Name)
				want := s.Values[i]
				n++
				if !ok || got.Text != want.Text || got.Kind != want.Kind || got.Int != want.Int ||
					!got.Time.Equal(want.Time) || got.Float != want.Float {
					t.Errorf("%s id %d %s: lookup %+v, stream %+v", table, id, col.Name, got, want)
				}
			}
		}
	}
	t.Logf("compared %d values", n)
}

// The mapping's facts read (Faveo's counting rules, written as a
// mapping.Aggregate), answered by Lookup.Aggregate, counts as Faveo does,
// bounded by MaxThreadID.
func TestLookupTicketFacts(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	ctx := context.Background()
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>one</p>")
	if err != nil {
		t.Fatal(err)
	}
	note, err := hd.InternalNote(ctx, w.TicketID, testenv.AgentBob, "<p>note</p>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hd.AddCollaborator(ctx, w.TicketID, testenv.ClientDave); err != nil {
		t.Fatal(err)
	}
	if _, err := hd.AddAttachment(ctx, note.ThreadID, "a.txt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	l, err := NewLookup(ctx, cfg, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	facts, err := mapping.ReadTicketFacts(ctx, l, cfg.Tables, []mapping.FactsQuery{{TicketID: w.TicketID}, {TicketID: 424242},
		{TicketID: w.TicketID, MaxThreadID: 0}})
	if err != nil {
		t.Fatal(err)
	}
	f := facts[w.TicketID]
	if f.ThreadCount != 2 || f.MaxThreadID != note.ThreadID || f.LastPoster != "support" || f.CollaboratorCount != 1 ||
		f.AttachmentCount != 1 || f.FirstThread == nil || f.FirstThread.Text("body") != "<p>Ticket body</p>" {
		t.Errorf("facts %+v", f)
	}
	if g := facts[424242]; g.ThreadCount != 0 || g.FirstThread != nil {
		t.Errorf("facts of a ticket without threads: %+v", g)
	}
	bounded, err := mapping.ReadTicketFacts(ctx, l, cfg.Tables, []mapping.FactsQuery{{TicketID: w.TicketID, MaxThreadID: w.ThreadID}})
	if err != nil {
		t.Fatal(err)
	}
	if f := bounded[w.TicketID]; f.ThreadCount != 1 || f.MaxThreadID != w.ThreadID || f.LastPoster != "client" {
		t.Errorf("facts up to thread %d (reply %d after it): %+v", w.ThreadID, r1.ThreadID, f)
	}
}

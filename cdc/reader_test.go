package cdc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// insertShown are the columns describe prints for an inserted row.
var insertShown = map[string][]string{
	"tickets":       {"user_id", "dept_id", "status"},
	"ticket_thread": {"ticket_id", "poster", "thread_type", "is_internal"},
}

func show(v change.Value) string {
	switch v.Kind {
	case change.KindNull:
		return "NULL"
	case change.KindUnchanged:
		return "?"
	}
	return v.Text
}

// describe renders a change: its operation, table and id, and for an
// update each changed column (old→new, or just the name for timestamps).
func describe(c change.Change) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", c.Op, c.Table.Name)
	switch c.Op {
	case change.Insert:
		fmt.Fprintf(&sb, " %s", c.New.Text("id"))
		for _, col := range insertShown[c.Table.Name] {
			v, _ := c.New.Get(col)
			fmt.Fprintf(&sb, " %s=%s", col, show(v))
		}
	case change.Update:
		fmt.Fprintf(&sb, " %s", c.New.Text("id"))
		if c.Old == nil {
			sb.WriteString(" (no old row)")
			break
		}
		var changed []string
		for i, col := range c.Table.Columns {
			o, n := c.Old.Values[i], c.New.Values[i]
			if o.Kind == n.Kind && o.Text == n.Text {
				continue
			}
			if n.Kind == change.KindTime || o.Kind == change.KindTime {
				changed = append(changed, col.Name)
			} else {
				changed = append(changed, fmt.Sprintf("%s:%s→%s", col.Name, show(o), show(n)))
			}
		}
		fmt.Fprintf(&sb, " [%s]", strings.Join(changed, " "))
	case change.Delete:
		fmt.Fprintf(&sb, " %s", c.Old.Text("id"))
		for _, v := range c.Old.Values {
			if v.Kind == change.KindUnchanged {
				sb.WriteString(" (key only)")
				break
			}
		}
	}
	return sb.String()
}

// TestSimulatorActions: every simulator action arrives as the right
// transactions, changes, old and new rows.
func TestSimulatorActions(t *testing.T) {
	f := newFixture(t, true)
	rec := newRecorder(true)
	run := startReader(t, f.cfg, rec, ReaderOptions{})
	run.waitConnected(t)
	ctx := testCtx(t, 5*time.Minute)

	var a, b testenv.Write // tickets A and B
	must := func(w testenv.Write, err error) testenv.Write {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	steps := []struct {
		name string
		do   func() [][]string // performs the action, returns the expected transactions
	}{
		{"create ticket", func() [][]string {
			a = must(f.hd.CreateTicket(ctx, testenv.NewTicket{}))
			return [][]string{{
				fmt.Sprintf("insert tickets %d user_id=5 dept_id=1 status=1", a.TicketID),
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=client thread_type=NULL is_internal=0", a.ThreadID, a.TicketID),
			}}
		}},
		{"first agent reply", func() [][]string {
			w := must(f.hd.AgentReply(ctx, a.TicketID, testenv.AgentAlice, "<p>On it</p>"))
			return [][]string{{
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=support thread_type=first_reply is_internal=0", w.ThreadID, a.TicketID),
				fmt.Sprintf("update tickets %d [isanswered:0→1 first_response_time updated_at response_due_by]", a.TicketID),
			}}
		}},
		{"second agent reply", func() [][]string {
			w := must(f.hd.AgentReply(ctx, a.TicketID, testenv.AgentAlice, "<p>Done</p>"))
			return [][]string{{
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=support thread_type=NULL is_internal=0", w.ThreadID, a.TicketID),
				fmt.Sprintf("update tickets %d [updated_at]", a.TicketID),
			}}
		}},
		{"client reply", func() [][]string {
			w := must(f.hd.ClientReply(ctx, a.TicketID, testenv.ClientDave, "<p>Thanks</p>"))
			return [][]string{{
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=client thread_type=NULL is_internal=0", w.ThreadID, a.TicketID),
				fmt.Sprintf("update tickets %d [isanswered:1→0 last_message_at updated_at]", a.TicketID),
			}}
		}},
		{"internal note", func() [][]string {
			w := must(f.hd.InternalNote(ctx, a.TicketID, testenv.AgentBob, "<p>psst</p>"))
			return [][]string{{
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=agent thread_type=note is_internal=1", w.ThreadID, a.TicketID),
				fmt.Sprintf("update tickets %d [updated_at]", a.TicketID),
			}}
		}},
		{"assign agent", func() [][]string {
			w := must(f.hd.AssignAgent(ctx, a.TicketID, testenv.AgentBob, testenv.AdminID))
			return [][]string{{
				fmt.Sprintf("update tickets %d [assigned_to:NULL→3 updated_at assigned_at]", a.TicketID),
				fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=support thread_type=ticket_assign_alert is_internal=1", w.ThreadID, a.TicketID),
			}}
		}},
		{"change department", func() [][]string {
			must(f.hd.ChangeDepartment(ctx, a.TicketID, testenv.DeptSales))
			return [][]string{{fmt.Sprintf("update tickets %d [dept_id:1→2 assigned_to:3→NULL updated_at]", a.TicketID)}}
		}},
		{"assign team", func() [][]string {
			must(f.hd.AssignTeam(ctx, a.TicketID, testenv.TeamLevel2))
			return [][]string{{fmt.Sprintf("update tickets %d [team_id:NULL→2 updated_at assigned_at]", a.TicketID)}}
		}},
		{"change owner", func() [][]string {
			must(f.hd.ChangeOwner(ctx, a.TicketID, testenv.ClientErin))
			return [][]string{{fmt.Sprintf("update tickets %d [user_id:5→6 updated_at]", a.TicketID)}}
		}},
		{"change due date", func() [][]string {
			must(f.hd.ChangeDueDate(ctx, a.TicketID, time.Date(2024, 2, 1, 17, 0, 0, 0, time.UTC)))
			return [][]string{{fmt.Sprintf("update tickets %d [duedate updated_at is_manual_duedate:0→1]", a.TicketID)}}
		}},
		{"close", func() [][]string {
			must(f.hd.ChangeStatus(ctx, a.TicketID, testenv.StatusClosed))
			return [][]string{{fmt.Sprintf("update tickets %d [status:1→3 closed:0→1 closed_at updated_at status_changed_at]", a.TicketID)}}
		}},
		{"reopen", func() [][]string {
			must(f.hd.ChangeStatus(ctx, a.TicketID, testenv.StatusOpen))
			return [][]string{{fmt.Sprintf("update tickets %d [status:3→1 reopened:0→1 closed:1→0 reopened_at updated_at status_changed_at]", a.TicketID)}}
		}},
		{"delete", func() [][]string {
			must(f.hd.Delete(ctx, a.TicketID))
			return [][]string{{fmt.Sprintf("update tickets %d [status:1→4 is_deleted:0→1 updated_at status_changed_at]", a.TicketID)}}
		}},
		{"create ticket in two transactions", func() [][]string {
			b = must(f.hd.CreateTicket(ctx, testenv.NewTicket{TwoTransactions: true, Requester: testenv.ClientGrace}))
			return [][]string{
				{fmt.Sprintf("insert tickets %d user_id=8 dept_id=1 status=1", b.TicketID)},
				{fmt.Sprintf("insert ticket_thread %d ticket_id=%d poster=client thread_type=NULL is_internal=0", b.ThreadID, b.TicketID)},
			}
		}},
		{"hard delete", func() [][]string {
			must(f.hd.HardDelete(ctx, b.TicketID))
			return [][]string{{
				fmt.Sprintf("delete ticket_thread %d (key only)", b.ThreadID),
				fmt.Sprintf("delete tickets %d", b.TicketID),
			}}
		}},
		{"user edited (default replica identity)", func() [][]string {
			f.db.Exec(t, "UPDATE users SET mobile = '555-0100' WHERE id = $1", testenv.ClientDave)
			return [][]string{{"update users 5 (no old row)"}}
		}},
		{"status added", func() [][]string {
			f.db.Exec(t, `INSERT INTO ticket_status (id, name, purpose_of_status) VALUES (100, 'Waiting', 1)`)
			return [][]string{{"insert ticket_status 100"}}
		}},
		{"teams truncated", func() [][]string {
			f.db.Exec(t, "TRUNCATE teams")
			return [][]string{{"truncate teams"}}
		}},
	}
	seen := 0
	for _, step := range steps {
		want := step.do()
		waitFor(t, 30*time.Second, step.name, func() bool { return rec.txns() >= seen+len(want) })
		var got [][]string
		var batches []*change.Batch
		for _, bt := range rec.snapshot() {
			if bt.Last {
				batches = append(batches, bt)
			}
		}
		for _, bt := range batches[seen:] {
			var txn []string
			for _, c := range bt.Changes {
				txn = append(txn, describe(c))
			}
			got = append(got, txn)
		}
		seen += len(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:\n got %q\nwant %q", step.name, got, want)
		}
	}

	// Positions grow, every transaction is one chunk, and the ticket
	// table's old rows are whole (REPLICA IDENTITY FULL): each is, value
	// for value, the new row the ticket's previous change carried.
	var ticketColumns int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'tickets'`).Scan(&ticketColumns); err != nil {
		t.Fatal(err)
	}
	var last change.Position
	tickets := map[string]*change.Row{} // id → latest row
	for _, bt := range rec.snapshot() {
		if bt.Pos <= last || bt.Seq != 0 || !bt.Last || bt.Xid == 0 || bt.CommitTime.IsZero() {
			t.Errorf("batch pos %s (after %s) seq %d last %v xid %d time %s", bt.Pos, last, bt.Seq, bt.Last, bt.Xid, bt.CommitTime)
		}
		last = bt.Pos
		for _, c := range bt.Changes {
			if c.Table.Name != "tickets" {
				continue
			}
			if c.Op != change.Insert {
				prev := tickets[c.Old.Text("id")]
				if got, want := rowText(c.Old), rowText(prev); got != want {
					t.Errorf("%s of ticket %s: old row\n%s\nwant the previous new row\n%s", c.Op, c.Old.Text("id"), got, want)
				}
				for i, v := range c.Old.Values {
					if v.Kind == change.KindUnchanged {
						t.Errorf("tickets old row lacks %s", c.Table.Columns[i].Name)
					}
					if pv := prev.Values[i]; v.Kind != pv.Kind || v.Int != pv.Int || !v.Time.Equal(pv.Time) {
						t.Errorf("ticket %s old %s = %+v, previously %+v", c.Old.Text("id"), c.Table.Columns[i].Name, v, pv)
					}
				}
			}
			if c.New != nil {
				tickets[c.New.Text("id")] = c.New
				if len(c.New.Values) != ticketColumns {
					t.Errorf("tickets new row has %d values, the table %d columns", len(c.New.Values), ticketColumns)
				}
			} else {
				delete(tickets, c.Old.Text("id"))
			}
		}
	}
	if len(tickets) != 1 {
		t.Errorf("tickets left: %d, want 1 (the hard-deleted one gone)", len(tickets))
	}
	// Acknowledged and idle: the slot is confirmed past the last commit.
	waitFor(t, 10*time.Second, "the slot to be confirmed past the last commit", func() bool {
		return f.slot(t).ConfirmedFlush > last
	})
	if err := run.stop(t); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// TestColumnAddedMidStream: a column added while streaming appears in
// later rows; batches already handed over keep their table.
func TestColumnAddedMidStream(t *testing.T) {
	f := newFixture(t, true)
	rec := newRecorder(true)
	startReader(t, f.cfg, rec, ReaderOptions{}).waitConnected(t)
	ctx := testCtx(t, time.Minute)

	w, err := f.hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	f.db.Exec(t, "ALTER TABLE tickets ADD COLUMN escalation_level integer NOT NULL DEFAULT 0")
	f.db.Exec(t, "UPDATE tickets SET escalation_level = 2 WHERE id = $1", w.TicketID)
	waitFor(t, 30*time.Second, "both transactions", func() bool { return rec.txns() >= 2 })

	bs := rec.snapshot()
	before, after := bs[0].Changes[0], bs[1].Changes[0]
	if before.Table.Col("escalation_level") >= 0 {
		t.Errorf("the insert's table has the later column: %v", before.Table.Columns)
	}
	if before.Table == after.Table {
		t.Error("the update reuses the insert's *change.Table")
	}
	oldV, _ := after.Old.Get("escalation_level")
	newV, _ := after.New.Get("escalation_level")
	if oldV.Kind != change.KindInt || oldV.Int != 0 || newV.Kind != change.KindInt || newV.Int != 2 {
		t.Errorf("escalation_level old %+v new %+v, want 0 → 2", oldV, newV)
	}
	if col := after.Table.Columns[after.Table.Col("escalation_level")]; col.Type != "int4" {
		t.Errorf("column type %q", col.Type)
	}
}

// TestRenamedTableStopsTheReader: a table deskhook reads, renamed while in
// the publication, stops Run with an error naming both names.
func TestRenamedTableStopsTheReader(t *testing.T) {
	f := newFixture(t, true)
	rec := newRecorder(true)
	run := startReader(t, f.cfg, rec, ReaderOptions{})
	run.waitConnected(t)
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
	waitFor(t, 30*time.Second, "the first update", func() bool { return rec.txns() >= 1 })
	f.db.Exec(t, "ALTER TABLE users RENAME TO people")
	f.db.Exec(t, "UPDATE people SET mobile = '2' WHERE id = 5")
	var err error
	select {
	case err = <-run.done:
		run.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	var re *TableRenamedError
	if !errors.As(err, &re) || re.Old != "public.users" || re.New != "public.people" {
		t.Fatalf("Run returned %v, want a TableRenamedError users → people", err)
	}
	if rec.txns() != 1 {
		t.Errorf("%d transactions handed over; the renamed table's must not be", rec.txns())
	}
}

package binlog

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// DDL on a watched table mid-stream is logged, the rows after it come with
// the new columns (the table map says so), the rows before keep theirs, and
// a TRUNCATE is handed over as one. OnTableChange hears of each table's
// first table map and of the DDL.
func TestDDLMidStream(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	var logs testenv.Output
	var mu sync.Mutex
	var changed []string
	r := NewReader(cfg, ReaderOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnTableChange: func(table string) {
		mu.Lock()
		changed = append(changed, table)
		mu.Unlock()
	}})
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, "", c) }()
	t.Cleanup(func() { cancel(); <-done })
	for !r.Stats().Connected {
		time.Sleep(10 * time.Millisecond)
	}
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "ALTER TABLE tickets ADD COLUMN extra varchar(20) NOT NULL DEFAULT 'x' AFTER id")
	if _, err := hd.ChangeStatus(ctx, w.TicketID, testenv.StatusClosed); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "TRUNCATE TABLE ticket_thread")
	m := mark(t, db)
	bs := c.waitFor(t, "the marker", time.Minute, sawMarker(m))
	var before, after *change.Table
	truncated := false
	for _, b := range bs {
		for _, ch := range b.Changes {
			switch {
			case ch.Table.Name == "tickets" && ch.Op == change.Insert:
				before = ch.Table
			case ch.Table.Name == "tickets" && ch.Op == change.Update:
				after = ch.Table
				if got := ch.Old.Text("extra"); got != "x" {
					t.Errorf("old row's new column: %q, want x", got)
				}
				if ch.Old.Text("status") == ch.New.Text("status") {
					t.Error("the update after the DDL shows no status change")
				}
			case ch.Op == change.Truncate:
				truncated = ch.Table.Name == "ticket_thread"
			}
		}
	}
	if before == nil || after == nil {
		t.Fatalf("insert table %v, update table %v", before, after)
	}
	if before.Col("extra") >= 0 || after.Col("extra") != 1 || len(after.Columns) != len(before.Columns)+1 {
		t.Errorf("columns before the DDL %d (extra at %d), after %d (extra at %d)", len(before.Columns),
			before.Col("extra"), len(after.Columns), after.Col("extra"))
	}
	if !truncated {
		t.Error("TRUNCATE ticket_thread not handed over")
	}
	mu.Lock()
	// tickets: first map, the ALTER, the new map; ticket_thread: first map,
	// the TRUNCATE; teams: the marker's first map.
	want := []string{"tickets", "ticket_thread", "tickets", "tickets", "ticket_thread", "teams"}
	if !slices.Equal(changed, want) {
		t.Errorf("OnTableChange heard %v, want %v", changed, want)
	}
	mu.Unlock()
	for _, want := range []string{"DDL on a table deskhook reads", "ALTER TABLE tickets", "table definition changed", "TRUNCATE TABLE ticket_thread"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

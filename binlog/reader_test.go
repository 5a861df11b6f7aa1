package binlog

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

var markerSeq atomic.Int64

// mark writes a marker row into the teams table and returns its name: once
// the stream shows it, every transaction committed before it was read.
func mark(t *testing.T, db *testenv.MySQLDB) string {
	t.Helper()
	name := fmt.Sprintf("marker-%d", markerSeq.Add(1))
	db.Exec(t, "INSERT INTO teams (name, status, assign_alert, admin_notes) VALUES (?, 1, 0, '')", name)
	return name
}

// sawMarker says whether the batches hold the marker row.
func sawMarker(name string) func([]*change.Batch) bool {
	return func(bs []*change.Batch) bool {
		for _, b := range bs {
			for _, c := range b.Changes {
				if c.Table.Name == "teams" && c.New != nil && c.New.Text("name") == name {
					return true
				}
			}
		}
		return false
	}
}

var mariaGTIDRE = regexp.MustCompile(`^0-1-(\d+)$`)

// checkResume checks each Last batch's Resume token against its position.
func checkResume(t *testing.T, bs []*change.Batch) {
	t.Helper()
	for _, b := range bs {
		if !b.Last {
			if b.Resume != "" {
				t.Errorf("chunk %d of %d carries Resume %q", b.Seq, b.Pos, b.Resume)
			}
			continue
		}
		m := mariaGTIDRE.FindStringSubmatch(b.Resume)
		if m == nil || m[1] != strconv.FormatUint(uint64(b.Pos), 10) {
			t.Errorf("batch at %d: Resume %q, want 0-1-%d", b.Pos, b.Resume, b.Pos)
		}
	}
}

// compareAll replays the batches and compares the helpdesk tables with
// the database.
func compareAll(t *testing.T, db *testenv.MySQLDB, cfg Config, bs []*change.Batch, zone string) {
	t.Helper()
	rp := replica{}
	rp.apply(t, bs)
	n := 0
	for _, table := range cfg.Tables.List() {
		selected := selectAll(t, db.DSN, table, zone)
		if table == cfg.Tables.Tickets || table == cfg.Tables.Threads {
			if len(selected) == 0 {
				t.Fatalf("%s is empty: the load wrote nothing", table)
			}
		}
		if rp[table] == nil { // seeded rows the stream never touched
			for id := range selected {
				if table != cfg.Tables.Tickets && table != cfg.Tables.Threads {
					delete(selected, id)
				}
			}
		} else {
			for id := range selected {
				if _, ok := rp[table][id]; !ok && table != cfg.Tables.Tickets && table != cfg.Tables.Threads {
					delete(selected, id) // seeded, untouched
				}
			}
		}
		n += compareTable(t, table, rp[table], selected)
	}
	t.Logf("compared %d values of %d batches", n, len(bs))
}

// A scripted helpdesk day: every transaction arrives once, in order, whole,
// and replaying the stream gives every row exactly as SELECT returns it
// (every column of every watched table, in PDO's text form).
func TestSimulatorDay(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	run := startReader(t, cfg, "", nil)
	res, err := testenv.LoadMySQL(context.Background(), db.Pool(t), testenv.LoadConfig{
		Tickets: 40, Replies: 3, Updates: 4, Writers: 3, Seed: 14,
		UpdateKinds: []testenv.ActionKind{testenv.ActStatus, testenv.ActDepartment, testenv.ActAssignAgent,
			testenv.ActAssignTeam, testenv.ActOwner, testenv.ActDueDate, testenv.ActNote},
	})
	if err != nil {
		t.Fatal(err)
	}
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	ctx := context.Background()
	if _, err := hd.Delete(ctx, res.Tickets[0].TicketID); err != nil {
		t.Fatal(err)
	}
	if _, err := hd.HardDelete(ctx, res.Tickets[1].TicketID); err != nil {
		t.Fatal(err)
	}
	m := mark(t, db)
	bs := run.c.waitFor(t, "the marker", 2*time.Minute, sawMarker(m))
	checkResume(t, bs)
	compareAll(t, db, cfg, bs, "")

	created := 0
	for _, b := range transactions(bs) {
		if !b.Last || b.Seq != 0 {
			t.Errorf("batch %d seq %d last %v: a small transaction must come whole", b.Pos, b.Seq, b.Last)
		}
		if b.CommitTime.IsZero() || time.Since(b.CommitTime) > time.Hour {
			t.Errorf("batch %d: commit time %s", b.Pos, b.CommitTime)
		}
		for _, c := range b.Changes {
			if c.Op == change.Insert && c.Table.Name == "tickets" {
				created++
			}
		}
	}
	if created != len(res.Tickets) {
		t.Errorf("%d ticket inserts streamed, the load created %d", created, len(res.Tickets))
	}
}

// Transactions deskhook does not read (another table) pass without
// batches, but once progress_interval has gone by without one, a batch
// without changes carries their position, so the stored position keeps up
// with the server's binlog, also when the stream falls idle right after them.
func TestProgressBatches(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	cfg.ProgressInterval = 300 * time.Millisecond
	run := startReader(t, cfg, "", nil)
	deadline := time.Now().Add(time.Minute)
	for {
		db.Exec(t, "INSERT INTO audit_log (message) VALUES ('not watched')")
		bs := run.c.all()
		if len(bs) > 0 {
			b := bs[0]
			if len(b.Changes) != 0 || !b.Last || !mariaGTIDRE.MatchString(b.Resume) {
				t.Fatalf("first batch: %d changes, last %v, resume %q; want a position-only batch", len(b.Changes), b.Last, b.Resume)
			}
			checkResume(t, bs)
			if n := len(bs); n > 20 {
				t.Errorf("%d progress batches: one per interval, not per transaction", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no progress batch within a minute of unwatched transactions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Unwatched transactions right after a watched one, then nothing: the
	// stream falls idle, and a progress batch (on a heartbeat) still
	// brings the position to the last of them.
	m := mark(t, db)
	run.c.waitFor(t, "the marker", time.Minute, sawMarker(m))
	for range 3 {
		db.Exec(t, "INSERT INTO audit_log (message) VALUES ('not watched, then idle')")
	}
	var end string
	if err := db.Pool(t).QueryRow("SELECT @@gtid_binlog_pos").Scan(&end); err != nil {
		t.Fatal(err)
	}
	bs := run.c.waitFor(t, "a progress batch to "+end, time.Minute, func(bs []*change.Batch) bool {
		return bs[len(bs)-1].Resume == end
	})
	if b := bs[len(bs)-1]; len(b.Changes) != 0 || !b.Last {
		t.Errorf("the batch to %s: %d changes, last %v; want a position-only batch", end, len(b.Changes), b.Last)
	}
	checkResume(t, bs)
}

package binlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// Now is the server's position; on a binlog reset (RESET MASTER) it is
// domain-server-0, from which the reader reads the domain's first
// transaction on; AfterGap is the start of the oldest binlog left after a
// purge. The source id names the flavor, domain and database.
func TestStartPositions(t *testing.T) {
	db := testenv.MariaDB(t, testenv.Dedicated(), testenv.NoFsync())
	cfg := testConfig(db)
	ctx := context.Background()
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	binlogPos := func() string {
		var s string
		if err := db.Pool(t).QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := hd.CreateTicket(ctx, testenv.NewTicket{}); err != nil {
		t.Fatal(err)
	}
	now, err := Now(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cur := binlogPos(); now.Resume != cur || now.Pos == 0 || cur != fmt.Sprintf("0-1-%d", now.Pos) ||
		now.Source != "mariadb/domain 0/"+db.Name {
		t.Errorf("Now: %+v; the server is at %s", now, cur)
	}
	if id, err := SourceID(ctx, cfg); err != nil || id != now.Source {
		t.Errorf("SourceID: %q, %v; want %q", id, err, now.Source)
	}

	db.Exec(t, "RESET MASTER")
	now, err = Now(ctx, cfg)
	if err != nil || now.Resume != "0-1-0" || now.Pos != 0 {
		t.Fatalf("Now after RESET MASTER: %+v, %v; want 0-1-0", now, err)
	}
	if _, err := CheckRetention(ctx, cfg, now.Resume); err != nil {
		t.Errorf("CheckRetention(%s) on an empty binlog: %v", now.Resume, err)
	}
	// Written before the reader starts: read from the token, not from
	// wherever the server is when the reader starts.
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	run := startReader(t, cfg, now.Resume, nil)
	bs := run.c.waitFor(t, "the ticket", time.Minute, func(bs []*change.Batch) bool { return len(transactions(bs)) > 0 })
	if first := transactions(bs)[0]; first.Pos != 1 || first.Changes[0].New.Text("ticket_number") != w.TicketNumber {
		t.Errorf("first transaction read from %s: %d %+v", now.Resume, first.Pos, first.Changes[0].New)
	}
	run.close(t)

	// A purge: AfterGap is where the oldest binlog left starts.
	db.Exec(t, "FLUSH BINARY LOGS")
	if _, err := hd.CreateTicket(ctx, testenv.NewTicket{}); err != nil {
		t.Fatal(err)
	}
	before := binlogPos()
	db.Exec(t, "FLUSH BINARY LOGS")
	files, err := binaryLogs(ctx, db.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	last := files[len(files)-1].name
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		db.Exec(t, "PURGE BINARY LOGS TO '"+last+"'")
		if files, _ := binaryLogs(ctx, db.Pool(t)); len(files) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PURGE BINARY LOGS left older files")
		}
	}
	gap, err := AfterGap(ctx, cfg)
	if err != nil || gap.Resume != before || gap.Pos != 2 {
		t.Errorf("AfterGap after the purge: %+v, %v; want the oldest binlog's start %s", gap, err, before)
	}
	if _, err := CheckRetention(ctx, cfg, now.Resume); err == nil {
		t.Errorf("CheckRetention(%s) after the purge: not lost", now.Resume)
	}
}

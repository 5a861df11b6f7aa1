package binlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// killDump ends the reader's replication connection on the server.
func killDump(t *testing.T, db *testenv.MySQLDB, r *Reader) bool {
	t.Helper()
	id := r.Stats().ConnectionID
	if id == 0 || !r.Stats().Connected {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := db.Pool(t)
	if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil && !strings.Contains(err.Error(), "Unknown thread") {
		t.Fatalf("KILL %d: %v", id, err)
	}
	return true
}

// A large transaction comes in chunks of at most max_batch_changes, all at
// its position, Last only on the final one, the reader's queue within its
// bound however slow the consumer; a KILL of the replication connection in
// the middle of it resumes after the chunks already handed over.
func TestLargeTransactionInChunks(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	cfg.MaxBatchChanges = 100
	cfg.MaxBatchBytes = 64 << 10
	cfg.QueueBytes = 64 << 10
	var (
		mu      sync.Mutex
		maxHeld int
		r       *Reader
		handled int
	)
	c := newCollector()
	slow := change.HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		mu.Lock()
		if q := r.queue.Load(); q != nil {
			_, held := q.Size()
			maxHeld = max(maxHeld, held)
		}
		handled++
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		return c.Handle(ctx, b)
	})
	run := startReader(t, cfg, "", slow)
	r = run.r
	const rows = 3000
	body := strings.Repeat("é", 500) // 1000 bytes
	db.Exec(t, "INSERT INTO ticket_thread (ticket_id, poster, reply_rating, rating_count, is_internal, title, body, format, ip_address) "+
		"SELECT 1, 'client', 0, 0, 0, CONCAT('t', seq), ?, '', '' FROM seq_1_to_3000", body)
	// Kill the stream while the transaction is being handed over.
	c.waitFor(t, "the first chunks", time.Minute, func(bs []*change.Batch) bool { return len(bs) >= 5 })
	if !killDump(t, db, r) {
		t.Fatal("no replication connection to kill")
	}
	m := mark(t, db)
	bs := c.waitFor(t, "the marker", 2*time.Minute, sawMarker(m))
	if r.Stats().Reconnects == 0 {
		t.Error("the KILL caused no reconnect")
	}
	var chunks []*change.Batch
	for _, b := range bs {
		if len(b.Changes) > 0 && b.Changes[0].Table.Name == "ticket_thread" {
			chunks = append(chunks, b)
		}
	}
	seen := map[string]bool{}
	for i, b := range chunks {
		if b.Pos != chunks[0].Pos || b.Seq != i || b.Last != (i == len(chunks)-1) {
			t.Fatalf("chunk %d: pos %d seq %d last %v (first at %d)", i, b.Pos, b.Seq, b.Last, chunks[0].Pos)
		}
		if len(b.Changes) > cfg.MaxBatchChanges {
			t.Errorf("chunk %d holds %d changes, more than %d", i, len(b.Changes), cfg.MaxBatchChanges)
		}
		for _, ch := range b.Changes {
			title := ch.New.Text("title")
			if seen[title] {
				t.Fatalf("row %s handed over twice", title)
			}
			seen[title] = true
			if ch.New.Text("body") != body {
				t.Fatalf("row %s: body of %d bytes, want %d", title, len(ch.New.Text("body")), len(body))
			}
		}
	}
	if len(seen) != rows {
		t.Errorf("%d rows handed over, want %d", len(seen), rows)
	}
	// Bound: the queue's limit, plus the batch an empty queue takes and
	// the one waiting for room.
	if limit := cfg.QueueBytes + 2*(cfg.MaxBatchBytes+16<<10); maxHeld > limit {
		t.Errorf("the queue held %d bytes, bound %d", maxHeld, limit)
	}
	t.Logf("%d chunks, queue held at most %d bytes, %d reconnects", len(chunks), maxHeld, r.Stats().Reconnects)
}

// A reader started from a stored Resume token gets exactly the
// transactions after it: none twice, none lost.
func TestResumeFromStoredGTID(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	ctx := context.Background()
	first := startReader(t, cfg, "", nil)
	var tickets []int64
	for range 6 {
		w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, w.TicketID)
	}
	bs := first.c.waitFor(t, "6 tickets", time.Minute, func(bs []*change.Batch) bool { return len(transactions(bs)) >= 6 })
	if err := first.close(t); err != nil {
		t.Fatal(err)
	}
	stored := transactions(bs)[2] // durable downstream up to the third ticket
	for range 3 {
		if _, err := hd.AgentReply(ctx, tickets[0], testenv.AgentAlice, "<p>later</p>"); err != nil {
			t.Fatal(err)
		}
	}
	second := startReader(t, cfg, stored.Resume, nil)
	m := mark(t, db)
	got := second.c.waitFor(t, "the marker", time.Minute, sawMarker(m))
	want := transactions(bs)[3:]
	gotTx := transactions(got)
	if len(gotTx) != len(want)+3+1 {
		t.Fatalf("resumed after %s: %d transactions, want %d (3 tickets, 3 replies, the marker)", stored.Resume, len(gotTx), len(want)+4)
	}
	for i, w := range want {
		if gotTx[i].Pos != w.Pos || gotTx[i].Resume != w.Resume || len(gotTx[i].Changes) != len(w.Changes) {
			t.Errorf("transaction %d: got %d (%s), want %d (%s)", i, gotTx[i].Pos, gotTx[i].Resume, w.Pos, w.Resume)
		}
	}
	for _, b := range got {
		if b.Pos <= stored.Pos {
			t.Errorf("transaction %d handed over again after resuming from %d", b.Pos, stored.Pos)
		}
	}
}

// KILL of the replication connection and FLUSH BINARY LOGS, repeatedly
// during a load, lose nothing and repeat nothing: the stream replayed
// equals the tables.
func TestKillAndFlushDuringLoad(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	run := startReader(t, cfg, "", nil)
	ctx := context.Background()
	loadDone := make(chan error, 1)
	go func() {
		_, err := testenv.LoadMySQL(ctx, db.Pool(t), testenv.LoadConfig{Tickets: 30, Replies: 4, Updates: 3,
			Writers: 2, Seed: 7, Rate: 300})
		loadDone <- err
	}()
	kills := 0
	for i := 0; ; i++ {
		select {
		case err := <-loadDone:
			if err != nil {
				t.Fatal(err)
			}
			if kills < 2 {
				t.Fatalf("the load ended after %d kills; make it longer", kills)
			}
			m := mark(t, db)
			bs := run.c.waitFor(t, "the marker", 2*time.Minute, sawMarker(m))
			compareAll(t, db, cfg, bs, "")
			t.Logf("%d kills, %d flushes, %d reconnects", kills, i/2, run.r.Stats().Reconnects)
			if run.r.Stats().Reconnects < uint64(kills) {
				t.Errorf("%d reconnects after %d kills", run.r.Stats().Reconnects, kills)
			}
			return
		case <-time.After(150 * time.Millisecond):
		}
		if i%2 == 0 {
			if killDump(t, db, run.r) {
				kills++
			}
		} else {
			db.Exec(t, "FLUSH BINARY LOGS")
		}
	}
}

// A MariaDB restart while the reader works through a backlog loses
// nothing: it reconnects once the server is back and resumes after the
// last transaction it handed over.
func TestServerRestartMidStream(t *testing.T) {
	db := testenv.MariaDB(t, testenv.Dedicated(), testenv.NoFsync())
	cfg := testConfig(db)
	c := newCollector()
	lag := change.HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		time.Sleep(3 * time.Millisecond) // a consumer behind the server
		return c.Handle(ctx, b)
	})
	run := startReader(t, cfg, "", lag)
	ctx := context.Background()
	if _, err := testenv.LoadMySQL(ctx, db.Pool(t), testenv.LoadConfig{Tickets: 40, Replies: 3, Updates: 2, Writers: 2, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "some of the backlog", time.Minute, func(bs []*change.Batch) bool { return len(bs) > 20 })
	if err := db.Server.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.LoadMySQL(ctx, db.Pool(t), testenv.LoadConfig{Tickets: 10, Replies: 2, Updates: 2, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	m := mark(t, db)
	bs := c.waitFor(t, "the marker", 3*time.Minute, sawMarker(m))
	if run.r.Stats().Reconnects == 0 {
		t.Error("no reconnect across the restart")
	}
	compareAll(t, db, cfg, bs, "")
}

// A stored position whose binlogs were purged is refused with
// ErrPositionLost naming it and the oldest position left — never a silent
// start elsewhere; CheckRetention reports the margin before that.
func TestPurgedPosition(t *testing.T) {
	db := testenv.MariaDB(t, testenv.Dedicated(), testenv.NoFsync())
	cfg := testConfig(db)
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	ctx := context.Background()
	first := startReader(t, cfg, "", nil)
	if _, err := hd.CreateTicket(ctx, testenv.NewTicket{}); err != nil {
		t.Fatal(err)
	}
	bs := first.c.waitFor(t, "a ticket", time.Minute, func(bs []*change.Batch) bool { return len(transactions(bs)) > 0 })
	first.close(t)
	stored := transactions(bs)[0].Resume

	// The margin: the stored position is in the newest of three files.
	db.Exec(t, "FLUSH BINARY LOGS")
	if _, err := hd.CreateTicket(ctx, testenv.NewTicket{}); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, "FLUSH BINARY LOGS")
	ret, err := CheckRetention(ctx, cfg, stored)
	if err != nil {
		t.Fatal(err)
	}
	// The stored transaction is the last of the third newest file: the
	// next one, where streaming starts, is in the second newest.
	if ret.Files < 3 || ret.FilesBefore != ret.Files-2 || ret.StoredPos != transactions(bs)[0].Pos || ret.BytesBefore <= 0 {
		t.Errorf("retention %+v: want the files before the second newest purgeable", ret)
	}
	var newest string
	if err := db.Pool(t).QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	if ret2, err := CheckRetention(ctx, cfg, newest); err != nil || ret2.FilesBefore != ret2.Files-1 {
		t.Errorf("retention of the newest position %+v, %v: want all files but the last before it", ret2, err)
	}

	// Purge: the stored position is gone.
	var file string
	var pos any
	rows, err := db.Pool(t).QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	for rows.Next() {
		dst := []any{&file, &pos}
		for len(dst) < len(cols) {
			dst = append(dst, new(any))
		}
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	// The server keeps a binlog a replica's dump thread still reads (the
	// first reader's, until the server notices it is gone).
	for deadline := time.Now().Add(time.Minute); ; {
		db.Exec(t, "PURGE BINARY LOGS TO '"+file+"'")
		files, err := binaryLogs(ctx, db.Pool(t))
		if err != nil {
			t.Fatal(err)
		}
		if files[0].name == file {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PURGE BINARY LOGS TO %s left %s", file, files[0].name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = CheckRetention(ctx, cfg, stored)
	var lost *PositionLostError
	if !errors.As(err, &lost) || !errors.Is(err, ErrPositionLost) || lost.Stored != stored || lost.Oldest == "" {
		t.Fatalf("CheckRetention after the purge: %v; want a PositionLostError naming %s and the oldest", err, stored)
	}
	second := startReader(t, cfg, stored, nil)
	err = second.runErr(t, time.Minute)
	if !errors.Is(err, ErrPositionLost) || !strings.Contains(err.Error(), stored) || !strings.Contains(err.Error(), "--accept-gap") {
		t.Fatalf("Run from a purged position: %v; want ErrPositionLost naming %s and the fix", err, stored)
	}
	if n := len(second.c.all()); n != 0 {
		t.Errorf("%d batches handed over from a purged position", n)
	}

	// A server reset (or rebuilt): the stored position lies beyond its
	// binlog.
	db.Exec(t, "RESET MASTER")
	third := startReader(t, cfg, newest, nil)
	if err := third.runErr(t, time.Minute); !errors.Is(err, ErrPositionLost) || !strings.Contains(err.Error(), "rebuilt or reset") {
		t.Fatalf("Run after RESET MASTER: %v; want ErrPositionLost (rebuilt or reset)", err)
	}
}

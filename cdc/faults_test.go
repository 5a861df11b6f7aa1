package cdc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// ledger is a Handler that records every change handed over, keyed by
// table and id, and checks each batch as it arrives: nothing at or before
// the acknowledged position, no chunk twice, chunks of a transaction in
// order. It acknowledges each transaction ackDelay after handling its Last
// chunk, so a fault finds some handed over and not yet acknowledged.
type ledger struct {
	reader   *Reader
	ackDelay time.Duration

	mu         sync.Mutex
	rows       map[string]int // "tickets 12" → times handed over
	nextSeq    map[change.Position]int
	txns       []change.Position
	violations []string
}

func newLedger(ackDelay time.Duration) *ledger {
	return &ledger{ackDelay: ackDelay, rows: map[string]int{}, nextSeq: map[change.Position]int{}}
}

func (l *ledger) Handle(_ context.Context, b *change.Batch) error {
	acked := l.reader.Stats().Acknowledged
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := func(format string, args ...any) {
		if len(l.violations) < 20 {
			l.violations = append(l.violations, fmt.Sprintf(format, args...))
		}
	}
	if b.Pos <= acked {
		bad("transaction %s (seq %d) handed over after %s was acknowledged", b.Pos, b.Seq, acked)
	}
	if want := l.nextSeq[b.Pos]; want < 0 || b.Seq != want {
		bad("transaction %s: chunk %d handed over, expected %d (-1: none)", b.Pos, b.Seq, want)
	}
	l.nextSeq[b.Pos] = b.Seq + 1
	for _, c := range b.Changes {
		row := c.New
		if row == nil {
			row = c.Old
		}
		l.rows[fmt.Sprintf("%s %s %s", c.Op, c.Table.Name, row.Text("id"))]++
	}
	if b.Last {
		l.nextSeq[b.Pos] = -1 // complete: any further chunk is a repeat
		l.txns = append(l.txns, b.Pos)
		time.AfterFunc(l.ackDelay, func() { l.reader.Ack(b.Pos) })
	}
	return nil
}

func (l *ledger) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rows[key]
}

func (l *ledger) transactions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.txns)
}

// check reports the violations, and every committed ticket (with its first
// thread) not handed over exactly once; tickets whose commit failed may
// have arrived once or not at all.
func (l *ledger) check(t *testing.T, load *loadWriter) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
	errs := 0
	report := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, w := range load.committed {
		for _, key := range []string{fmt.Sprintf("insert tickets %d", w.TicketID), fmt.Sprintf("insert ticket_thread %d", w.ThreadID)} {
			if n := l.rows[key]; n != 1 {
				report("%s (committed) handed over %d times, want once", key, n)
			}
		}
	}
	for key, n := range l.rows {
		if n > 1 {
			report("%s handed over %d times", key, n)
		}
	}
	if len(load.committed) < 20 {
		t.Errorf("only %d tickets committed: the load did not run", len(load.committed))
	}
}

// loadWriter creates tickets, one transaction each, until stopped.
type loadWriter struct {
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	committed []testenv.Write
	failed    int
}

func startLoad(f *fixture) *loadWriter {
	lw := &loadWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		for {
			select {
			case <-lw.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			w, err := f.hd.CreateTicket(ctx, testenv.NewTicket{})
			cancel()
			lw.mu.Lock()
			if err != nil {
				lw.failed++ // the server is away; the commit may or may not have happened
			} else {
				lw.committed = append(lw.committed, w)
			}
			lw.mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			} else {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	return lw
}

func (lw *loadWriter) finish() {
	close(lw.stop)
	<-lw.done
}

// faultTest runs the load through a Reader, injects fault once some of it
// was handed over, lets the load run on, and checks that every committed
// ticket arrived exactly once and nothing acknowledged came again.
func faultTest(t *testing.T, f *fixture, fault func(oldPID uint32)) {
	l := newLedger(100 * time.Millisecond)
	run := startReader(t, f.cfg, l, ReaderOptions{})
	l.reader = run.reader
	run.waitConnected(t)
	load := startLoad(f)
	defer func() {
		select {
		case <-load.done:
		default:
			load.finish()
		}
	}()
	waitFor(t, time.Minute, "100 transactions", func() bool { return l.transactions() >= 100 })
	// Strike while some are handed over and not yet acknowledged.
	waitFor(t, 10*time.Second, "an unacknowledged transaction", func() bool { return run.reader.Stats().Pending > 0 })
	pid := run.reader.Stats().BackendPID
	fault(pid)
	waitFor(t, time.Minute, "a new walsender", func() bool {
		st := run.reader.Stats()
		return st.Connected && st.BackendPID != pid
	})
	handled := l.transactions()
	waitFor(t, time.Minute, "100 more transactions", func() bool { return l.transactions() >= handled+100 })
	load.finish()
	last := load.committed[len(load.committed)-1]
	waitFor(t, time.Minute, "the last ticket", func() bool {
		return l.count(fmt.Sprintf("insert ticket_thread %d", last.ThreadID)) > 0
	})
	waitFor(t, 10*time.Second, "every acknowledgement", func() bool { return run.reader.Stats().Pending == 0 })
	if st := run.reader.Stats(); st.Reconnects == 0 {
		t.Errorf("no reconnect counted: %+v", st)
	}
	l.check(t, load)
	t.Logf("%d tickets committed, %d failed during the fault; %d transactions handed over; %d reconnects",
		len(load.committed), load.failed, l.transactions(), run.reader.Stats().Reconnects)
}

// TestWalsenderTerminated: pg_terminate_backend on the walsender in the
// middle of a stream of transactions.
func TestWalsenderTerminated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	faultTest(t, f, func(pid uint32) {
		f.db.Exec(t, "SELECT pg_terminate_backend($1)", int32(pid))
	})
}

// TestServerRestart: the server restarts in the middle of a stream of
// transactions.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.Dedicated(), testenv.NoFsync())
	faultTest(t, f, func(uint32) {
		if err := f.db.Server.Restart(testCtx(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWalsenderTerminatedMidTransaction: the connection is lost while a
// large transaction is handed over in chunks; after the reconnect the rest
// of it follows, without repeating a chunk or a row.
func TestWalsenderTerminatedMidTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	// 20 MB on the wire: more than the socket buffers hold, so most of the
	// transaction is still to come when the connection goes.
	const rows = 20_000
	cfg := f.cfg
	// Chunks of 100 changes, and a queue that holds one.
	cfg.MaxBatchChanges, cfg.QueueBytes = 100, 64<<10
	l := newLedger(0)
	var once sync.Once
	terminated := make(chan error, 1)
	h := HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		if b.Seq == 5 {
			once.Do(func() {
				_, err := f.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(l.reader.Stats().BackendPID))
				terminated <- err
			})
		}
		return l.Handle(ctx, b)
	})
	run := startReader(t, cfg, h, ReaderOptions{})
	l.reader = run.reader
	run.waitConnected(t)
	f.db.Exec(t, `INSERT INTO ticket_thread (ticket_id, poster, body) SELECT g, 'client', repeat('x', 1000) FROM generate_series(1, $1::int) g`, rows)
	waitFor(t, time.Minute, "the transaction", func() bool { return l.transactions() == 1 })
	if err := <-terminated; err != nil {
		t.Fatal(err)
	}
	if st := run.reader.Stats(); st.Reconnects == 0 {
		t.Errorf("no reconnect: the fault came too late (%+v)", st)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
	if len(l.rows) != rows {
		t.Errorf("%d distinct rows handed over, want %d", len(l.rows), rows)
	}
	repeated := 0
	for key, n := range l.rows {
		if n != 1 {
			if repeated++; repeated <= 10 {
				t.Errorf("%s handed over %d times", key, n)
			}
		}
	}
}

// TestUnacknowledgedHandedOverAgain: a Reader stopped with transactions
// handed over and not acknowledged; the next Reader hands those over
// again, and never the acknowledged ones (from the slot, or from an Ack
// before Run, as the outbox does with its stored position).
func TestUnacknowledgedHandedOverAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	write := func(n int) {
		for i := range n {
			f.db.Exec(t, "UPDATE users SET mobile = $1 WHERE id = $2", fmt.Sprint(i), testenv.ClientDave)
		}
	}
	positions := func(rec *recorder) []change.Position {
		var ps []change.Position
		for _, b := range rec.snapshot() {
			if b.Last {
				ps = append(ps, b.Pos)
			}
		}
		return ps
	}

	first := newRecorder(false)
	run := startReader(t, f.cfg, first, ReaderOptions{FinalAckWait: -1})
	run.waitConnected(t)
	write(6)
	waitFor(t, 30*time.Second, "six transactions", func() bool { return first.txns() == 6 })
	txns := positions(first)
	run.reader.Ack(txns[2])
	waitFor(t, 10*time.Second, "the acknowledgement to be sent", func() bool {
		return run.reader.Stats().Confirmed > txns[2]
	})
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if s := f.slot(t); s.ConfirmedFlush <= txns[2] || s.ConfirmedFlush >= txns[3] {
		t.Errorf("slot confirmed at %s, want after %s and before %s", s.ConfirmedFlush, txns[2], txns[3])
	}

	second := newRecorder(true)
	run = startReader(t, f.cfg, second, ReaderOptions{})
	run.reader.Ack(txns[3]) // the consumer's stored position
	run.waitConnected(t)
	waitFor(t, 30*time.Second, "the unacknowledged transactions", func() bool { return second.txns() >= 2 })
	time.Sleep(500 * time.Millisecond) // anything more would be a repeat
	if got, want := fmt.Sprint(positions(second)), fmt.Sprint(txns[4:]); got != want {
		t.Errorf("second reader got %s, want %s", got, want)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}

	third := newRecorder(true)
	run = startReader(t, f.cfg, third, ReaderOptions{})
	run.waitConnected(t)
	write(1)
	waitFor(t, 30*time.Second, "the new transaction", func() bool { return third.txns() >= 1 })
	time.Sleep(500 * time.Millisecond)
	if ps := positions(third); len(ps) != 1 || ps[0] <= txns[5] {
		t.Errorf("third reader got %v, want only a transaction after %s", ps, txns[5])
	}
}

// TestCleanShutdownConfirms: cancelling Run sends a final status update
// confirming what was acknowledged, without waiting for the timer.
func TestCleanShutdownConfirms(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	cfg := f.cfg
	cfg.StatusInterval = MaxStatusInterval
	for attempt := 0; ; attempt++ {
		rec := newRecorder(true)
		run := startReader(t, cfg, rec, ReaderOptions{})
		run.waitConnected(t)
		f.db.Exec(t, "UPDATE users SET mobile = $1 WHERE id = 5", fmt.Sprint(attempt))
		waitFor(t, 30*time.Second, "the transaction", func() bool { return rec.txns() == 1 })
		pos := rec.snapshot()[0].Pos
		waitFor(t, 10*time.Second, "the acknowledgement", func() bool { return run.reader.Stats().Pending == 0 })
		if s := f.slot(t); s.ConfirmedFlush > pos {
			// A timed update came first (a slow machine); try again.
			run.stop(t)
			if attempt == 3 {
				t.Fatal("a timed status update always came before the shutdown")
			}
			continue
		}
		if err := run.stop(t); err != nil {
			t.Fatal(err)
		}
		if s := f.slot(t); s.ConfirmedFlush <= pos {
			t.Errorf("after shutdown the slot is confirmed at %s, want past %s", s.ConfirmedFlush, pos)
		}
		return
	}
}

// TestIdleSlotFollowsWAL: while only unpublished tables are written, the
// slot's confirmed position follows the server's WAL (nothing pending, the
// reader confirms the server's WAL end), so the slot retains no WAL.
func TestIdleSlotFollowsWAL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	rec := newRecorder(true)
	run := startReader(t, f.cfg, rec, ReaderOptions{})
	run.waitConnected(t)
	start := f.slot(t).ConfirmedFlush
	for i := range 20 {
		f.db.Exec(t, `INSERT INTO audit_log (message) SELECT $1 || '.' || g FROM generate_series(1, 50) g`, fmt.Sprint("entry ", i))
	}
	target := f.currentLSN(t)
	if target <= start+20*50*50 {
		t.Fatalf("the writes moved the WAL only from %s to %s", start, target)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("confirmed_flush_lsn to reach %s", target), func() bool {
		return f.slot(t).ConfirmedFlush >= target
	})
	if n := rec.txns(); n != 0 {
		t.Errorf("%d transactions handed over for an unpublished table", n)
	}
	st := run.reader.Stats()
	if st.ServerWALEnd < target || st.Confirmed < target {
		t.Errorf("stats %+v, want server WAL end and confirmed at or past %s", st, target)
	}
}

package cdc

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
)

// fixture is a helpdesk database set up for replication, with its own slot.
type fixture struct {
	db   *testenv.DB
	cfg  Config
	pool *pgxpool.Pool
	hd   *testenv.Helpdesk
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testConfig is the configuration for db: a slot named after the database
// (slots are per cluster), quick status updates and reconnects.
func testConfig(db *testenv.DB) Config {
	cfg := Config{DSN: db.DSN, Slot: db.Name, StatusInterval: 500 * time.Millisecond,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second}
	cfg.SetDefaults()
	return cfg
}

// newFixture starts a database (options as for testenv.Postgres) and runs
// Setup unless noSetup. The slot is dropped at cleanup.
func newFixture(t testing.TB, setup bool, opts ...testenv.Option) *fixture {
	t.Helper()
	db := testenv.Postgres(t, opts...)
	f := &fixture{db: db, cfg: testConfig(db), pool: db.Pool(t)}
	f.hd = testenv.NewHelpdesk(f.pool)
	clock := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	f.hd.Now = func() time.Time { // a minute per action, so every timestamp column moves
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Minute)
		return clock
	}
	// Runs before the database is dropped (cleanups run last-in first-out):
	// a database with a slot cannot be dropped.
	t.Cleanup(func() { dropSlot(t, f) })
	if setup {
		if _, err := Setup(testCtx(t, time.Minute), f.cfg); err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	return f
}

func dropSlot(t testing.TB, f *fixture) {
	ctx := testCtx(t, 30*time.Second)
	for {
		_, err := f.pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name = $1`, f.cfg.Slot)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("dropping slot %s: %v", f.cfg.Slot, err)
			return
		}
		time.Sleep(100 * time.Millisecond) // a walsender still exiting
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// recorder is a Handler that keeps every batch; with autoAck it
// acknowledges each transaction once its Last chunk is handled.
type recorder struct {
	reader  *Reader
	autoAck bool
	// before, if set, runs before a batch is recorded (to block, slow down…).
	before func(ctx context.Context, b *change.Batch) error

	mu      sync.Mutex
	batches []*change.Batch
	changed chan struct{}
}

func newRecorder(autoAck bool) *recorder {
	return &recorder{autoAck: autoAck, changed: make(chan struct{}, 1)}
}

func (rec *recorder) Handle(ctx context.Context, b *change.Batch) error {
	if rec.before != nil {
		if err := rec.before(ctx, b); err != nil {
			return err
		}
	}
	rec.mu.Lock()
	rec.batches = append(rec.batches, b)
	rec.mu.Unlock()
	select {
	case rec.changed <- struct{}{}:
	default:
	}
	if rec.autoAck && b.Last {
		rec.reader.Ack(b.Pos)
	}
	return nil
}

func (rec *recorder) snapshot() []*change.Batch {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*change.Batch(nil), rec.batches...)
}

// txns returns the number of complete transactions received.
func (rec *recorder) txns() int {
	n := 0
	for _, b := range rec.snapshot() {
		if b.Last {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a Reader running in the background.
type running struct {
	reader *Reader
	cancel context.CancelFunc
	done   chan error
}

// startReader runs a Reader with h until cleanup (or stop).
func startReader(t testing.TB, cfg Config, h Handler, opts ReaderOptions) *running {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	r := NewReader(cfg, opts)
	if rec, ok := h.(*recorder); ok {
		rec.reader = r
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{reader: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx, h) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels the reader and returns what Run returned.
func (run *running) stop(t testing.TB) error {
	run.cancel()
	select {
	case err, ok := <-run.done:
		if ok {
			close(run.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Errorf("Reader.Run did not return within 30s of cancel")
		return errors.New("not stopped")
	}
}

// waitConnected waits until the reader streams.
func (run *running) waitConnected(t testing.TB) {
	t.Helper()
	waitFor(t, 30*time.Second, "the reader to connect", func() bool {
		select {
		case err := <-run.done:
			run.done <- err
			t.Fatalf("Run returned: %v", err)
		default:
		}
		return run.reader.Stats().Connected
	})
}

// slot reads the slot's state.
func (f *fixture) slot(t testing.TB) Slot {
	t.Helper()
	s, err := SlotInfo(testCtx(t, 10*time.Second), f.cfg)
	if err != nil {
		t.Fatalf("SlotInfo: %v", err)
	}
	return s
}

func (f *fixture) currentLSN(t testing.TB) change.Position {
	t.Helper()
	var s string
	if err := f.pool.QueryRow(testCtx(t, 10*time.Second), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return change.Position(lsn)
}

package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

func TestJudgeSlot(t *testing.T) {
	const src, other = "7301/helpdesk", "7999/helpdesk"
	streamed := Mark{Source: src, Stored: 1000, Confirmed: 1500}
	tests := []struct {
		name string
		mark Mark
		slot slotView
		want GapReason // "" for none
	}{
		{"never streamed takes a new slot", Mark{}, slotView{exists: true, confirmed: 9000, source: src}, ""},
		{"never streamed, slot missing: setup's job", Mark{}, slotView{source: src}, ""},
		{"behind the store: resent, skipped", streamed, slotView{exists: true, confirmed: 800, source: src}, ""},
		{"at the recorded confirmation", streamed, slotView{exists: true, confirmed: 1500, source: src}, ""},
		{"past it", streamed, slotView{exists: true, confirmed: 1501, source: src}, GapSlotAhead},
		{"missing", streamed, slotView{source: src}, GapSlotMissing},
		{"invalidated", streamed, slotView{exists: true, confirmed: 1200, walStatus: "lost", source: src}, GapSlotLost},
		{"another database", streamed, slotView{exists: true, confirmed: 10, source: other}, GapOtherSource},
		{"a store from before sources were recorded, slot past it", Mark{Stored: 1000},
			slotView{exists: true, confirmed: 1100, source: src}, GapSlotAhead},
		{"a store from before sources were recorded, slot behind", Mark{Stored: 1000},
			slotView{exists: true, confirmed: 900, source: src}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := judgeSlot("s", tc.mark, tc.slot)
			switch {
			case tc.want == "" && g != nil:
				t.Fatalf("gap %q: %v", g.Reason, g)
			case tc.want != "" && g == nil:
				t.Fatalf("no gap, want %q", tc.want)
			case g != nil && (g.Reason != tc.want || !errors.Is(g, ErrSlotGap)):
				t.Fatalf("gap %q (%v), want %q", g.Reason, g, tc.want)
			case g != nil && g.From != tc.mark.upTo():
				t.Errorf("gap from %s, want %s", g.From, tc.mark.upTo())
			}
		})
	}
}

// memStore is a consumer's store of the source mark, in memory. While
// blocked, RecordConfirmed waits.
type memStore struct {
	mu      sync.Mutex
	m       Mark
	blocked chan struct{} // nil: records at once
	records int
}

func (s *memStore) Mark() (Mark, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m, nil
}

func (s *memStore) RecordConfirmed(ctx context.Context, source string, pos change.Position) error {
	s.mu.Lock()
	gate := s.blocked
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m.Source != "" && s.m.Source != source {
		return fmt.Errorf("store of %s, not %s", s.m.Source, source)
	}
	s.m.Source, s.m.Confirmed = source, max(s.m.Confirmed, pos)
	s.records++
	return nil
}

func (s *memStore) set(change func(*Mark)) {
	s.mu.Lock()
	change(&s.m)
	s.mu.Unlock()
}

func (s *memStore) block() {
	s.mu.Lock()
	s.blocked = make(chan struct{})
	s.mu.Unlock()
}

func (s *memStore) unblock() {
	s.mu.Lock()
	close(s.blocked)
	s.blocked = nil
	s.mu.Unlock()
}

// storing is a Handler that stores each transaction in a memStore (its
// stored position), then acknowledges it, as the daemon's outbox does.
type storing struct {
	store  *memStore
	reader *Reader
}

func (h *storing) Handle(_ context.Context, b *change.Batch) error {
	if b.Last {
		h.store.set(func(m *Mark) { m.Stored = max(m.Stored, b.Pos) })
		h.reader.Ack(b.Pos)
	}
	return nil
}

func startStoring(t *testing.T, cfg Config, store *memStore) *running {
	t.Helper()
	h := &storing{store: store}
	run := startReader(t, cfg, h, ReaderOptions{Store: store})
	h.reader = run.reader
	return run
}

// TestReaderConfirmsOnlyWhatTheStoreRecorded: with a Store, the slot is
// never confirmed past what the store holds or recorded first; an idle
// reader still gets the slot to the server's WAL end, once the store
// recorded it.
func TestReaderConfirmsOnlyWhatTheStoreRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	store := &memStore{}
	run := startStoring(t, f.cfg, store)
	run.waitConnected(t)
	// The invariant: the slot (read first) is never past the store.
	within := func() {
		t.Helper()
		s := f.slot(t).ConfirmedFlush
		if m, _ := store.Mark(); s > m.upTo() {
			t.Fatalf("slot confirmed at %s, past what the store holds or recorded: %+v", s, m)
		}
	}
	if m, _ := store.Mark(); m.Source == "" || m.Confirmed == 0 {
		t.Fatalf("after the first connection the store holds %+v; want the source and the slot's position", m)
	}
	within()

	// Idle, the store refusing to record: the WAL moves, the slot stays.
	store.block()
	for i := range 10 {
		f.db.Exec(t, `INSERT INTO audit_log (message) SELECT $1 || '.' || g FROM generate_series(1, 50) g`, fmt.Sprint(i))
	}
	target := f.currentLSN(t)
	waitFor(t, 30*time.Second, "the server's WAL end to reach the reader", func() bool {
		return run.reader.Stats().ServerWALEnd >= target
	})
	for range 4 { // several status updates
		time.Sleep(f.cfg.StatusInterval)
		within()
	}
	if s := f.slot(t).ConfirmedFlush; s >= target {
		t.Fatalf("slot confirmed at %s, the WAL end %s, while the store could not record it", s, target)
	}

	// Recorded, it is confirmed.
	store.unblock()
	waitFor(t, 30*time.Second, fmt.Sprintf("the slot to be confirmed at %s", target), func() bool {
		return f.slot(t).ConfirmedFlush >= target
	})
	within()

	// A published transaction is stored, then confirmed.
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
	waitFor(t, 30*time.Second, "the transaction to be stored", func() bool { m, _ := store.Mark(); return m.Stored > target })
	waitFor(t, 30*time.Second, "the slot to reach it", func() bool {
		m, _ := store.Mark()
		return f.slot(t).ConfirmedFlush >= m.Stored
	})
	for range 4 {
		within()
		time.Sleep(f.cfg.StatusInterval)
	}
}

// TestLostSlotIsNeverReplacedSilently: once the store has streamed, a slot
// dropped, re-created by someone with the same name, advanced past the
// store or from another database stops Run with a GapError naming both
// positions; Setup refuses it without AcceptGap, changing nothing; with
// AcceptGap it makes the slot and reports the gap, after which the store
// (told of it) streams again.
func TestLostSlotIsNeverReplacedSilently(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	store := &memStore{}
	run := startStoring(t, f.cfg, store)
	run.waitConnected(t)
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
	waitFor(t, 30*time.Second, "a stored transaction", func() bool { m, _ := store.Mark(); return m.Stored > 0 })
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	mark, _ := store.Mark()
	opts := func(accept bool) SetupOptions { return SetupOptions{Mark: store.Mark, AcceptGap: accept} }
	runGap := func(want GapReason, wantIn ...string) *GapError {
		t.Helper()
		err := runUntilErrorWith(t, f.cfg, nil, ReaderOptions{Store: store}, nil)
		var g *GapError
		if !errors.As(err, &g) || g.Reason != want || !errors.Is(err, ErrSlotGap) || !permanent(err) {
			t.Fatalf("Run returned %v, want a %q gap", err, want)
		}
		for _, w := range append(wantIn, mark.Stored.String(), "--accept-gap") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("the error lacks %q: %v", w, err)
			}
		}
		return g
	}

	// Dropped.
	dropSlot(t, f)
	runGap(GapSlotMissing, "does not exist")
	before := f.state(t)
	if _, err := SetupWith(testCtx(t, time.Minute), f.cfg, opts(false)); !errors.Is(err, ErrSlotGap) {
		t.Fatalf("Setup without AcceptGap returned %v", err)
	}
	if s := f.state(t); s != before {
		t.Fatalf("a refused Setup changed %+v to %+v", before, s)
	}
	res, err := SetupWith(testCtx(t, time.Minute), f.cfg, opts(true))
	if err != nil {
		t.Fatal(err)
	}
	at := f.slot(t).ConfirmedFlush
	if g := res.Gap; g == nil || g.Reason != GapSlotMissing || g.From != mark.upTo() || g.To != at || g.Source != mark.Source {
		t.Fatalf("accepted gap %+v; want from %s to %s", res.Gap, mark.upTo(), at)
	}
	store.set(func(m *Mark) { m.Source, m.Confirmed = res.Gap.Source, res.Gap.To }) // as the outbox records it
	run = startStoring(t, f.cfg, store)
	run.waitConnected(t)
	run.stop(t)

	// Re-created by someone else, with the same name.
	dropSlot(t, f)
	f.db.Exec(t, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", f.cfg.Slot)
	mark, _ = store.Mark()
	g := runGap(GapSlotAhead, f.slot(t).ConfirmedFlush.String(), "re-created or advanced")
	if g.To != f.slot(t).ConfirmedFlush {
		t.Errorf("gap to %s, want the slot's %s", g.To, f.slot(t).ConfirmedFlush)
	}
	res, err = SetupWith(testCtx(t, time.Minute), f.cfg, opts(true))
	if err != nil || res.Gap == nil || res.Gap.Reason != GapSlotAhead || res.Gap.To != f.slot(t).ConfirmedFlush {
		t.Fatalf("accepting: %+v, %v", res, err)
	}
	store.set(func(m *Mark) { m.Confirmed = res.Gap.To })

	// Advanced by someone else.
	f.db.Exec(t, "INSERT INTO audit_log (message) VALUES ('x')")
	f.db.Exec(t, "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", f.cfg.Slot)
	mark, _ = store.Mark()
	runGap(GapSlotAhead)

	// Another database's store.
	store.set(func(m *Mark) { m.Source = "1234/elsewhere" })
	mark, _ = store.Mark()
	runGap(GapOtherSource, "1234/elsewhere")
}

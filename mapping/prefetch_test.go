package mapping

import (
	"bytes"
	"context"
	"testing"

	"github.com/deskhook/deskhook/change"
)

// threadSource is a memSource whose ticket facts come from the thread rows
// it holds, bounded by each query's MaxThreadID as cdc.Lookup bounds them:
// the source "now" holds threads the stream has yet to deliver.
type threadSource struct {
	*memSource
	queries [][]FactsQuery
}

func (s *threadSource) Aggregate(ctx context.Context, a Aggregate) (map[int64]AggregateRow, error) {
	return answerFacts(ctx, a, s.ticketFacts)
}

func (s *threadSource) ticketFacts(ctx context.Context, qs []FactsQuery) (map[int64]TicketFacts, error) {
	if _, err := s.memSource.ticketFacts(ctx, qs); err != nil { // counts, refuses duplicates
		return nil, err
	}
	s.queries = append(s.queries, qs)
	out := map[int64]TicketFacts{}
	for _, q := range qs {
		var f TicketFacts
		var firstID, lastID int64
		for id, r := range s.rows["ticket_thread"] {
			if tid, _ := r.Int("ticket_id"); tid != q.TicketID || (q.MaxThreadID > 0 && id > q.MaxThreadID) {
				continue
			}
			f.MaxThreadID = max(f.MaxThreadID, id)
			if isInternal(r) {
				continue
			}
			f.ThreadCount++
			if firstID == 0 || id < firstID {
				firstID, f.FirstThread = id, r
			}
			if id > lastID {
				lastID, f.LastPoster = id, r.Text("poster")
			}
		}
		out[q.TicketID] = f
	}
	return out, nil
}

// prefetchRun is a run of transactions whose tickets the mapper has never
// seen: replies to and updates of tickets written before the stream, a
// ticket created within the run, users and statuses to read. The source
// already holds every thread of the run (it is read "now").
func prefetchRun(src *threadSource) []*change.Batch {
	for id := 1; id <= 3; id++ {
		src.put(ticketRow(id, 5, 1, 1, nil))
		src.put(threadRow(id, id, 5, "client", 0))
	}
	replies := []*change.Row{threadRow(101, 1, 1, "support", 0), threadRow(102, 2, 6, "support", 0),
		threadRow(103, 1, 5, "client", 0), threadRow(105, 4, 1, "support", 0)}
	for _, r := range replies {
		src.put(r)
	}
	src.put(threadRow(104, 4, 5, "client", 0))
	return []*change.Batch{
		txn(10, ins(replies[0])),
		txn(20, ins(replies[1]), upd(ticketRow(3, 5, 1, 1, nil), ticketRow(3, 5, 1, 2, 1))),
		txn(30, ins(replies[2])),
		txn(40, ins(ticketRow(4, 5, 1, 1, nil)), ins(threadRow(104, 4, 5, "client", 0)), ins(replies[3])),
		txn(50, upd(ticketRow(1, 5, 1, 1, nil), ticketRow(1, 6, 2, 2, nil))),
		txn(60, upd(ticketRow(2, 5, 1, 1, nil), ticketRow(2, 5, 1, 1, nil))), // fires nothing
	}
}

// TestPrefetchChangesNoEvent: mapping a run after Prefetch gives the events
// of mapping it transaction by transaction, byte for byte (thread counts
// and posters as of each transaction, although the facts were read ahead),
// and reads the source in one round instead of one per transaction.
func TestPrefetchChangesNoEvent(t *testing.T) {
	ctx := context.Background()
	run := func(prefetch bool) ([]Event, *threadSource) {
		src := &threadSource{memSource: newMemSource()}
		bs := prefetchRun(src)
		m, _ := newTestMapper(t, src, nil)
		if prefetch {
			if err := m.Prefetch(ctx, bs); err != nil {
				t.Fatal(err)
			}
			if src.factCalls != 1 || src.rowCalls["tickets"] != 1 || src.rowCalls["users"] != 1 ||
				src.rowCalls["ticket_status"] != 1 {
				t.Fatalf("Prefetch: %d facts reads, rows read %v; want one of each", src.factCalls, src.rowCalls)
			}
		}
		var all []Event
		for _, b := range bs {
			all = append(all, mustMap(t, m, b)...)
		}
		return all, src
	}
	want, seq := run(false)
	got, pre := run(true)
	if len(got) != len(want) {
		t.Fatalf("%d events with Prefetch, %d without", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Type != want[i].Type || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Errorf("event %d differs:\nprefetched %s %s\n       want %s %s", i, got[i].ID, got[i].Payload,
				want[i].ID, want[i].Payload)
		}
	}
	if eventTypes(want) != "ticket_reply,ticket_reply,ticket_status_updated,ticket_assigned,ticket_commented,"+
		"ticket_created,ticket_reply,ticket_status_updated,ticket_department_updated,ticket_owner_updated" {
		t.Errorf("events: %s", eventTypes(want))
	}
	// Ticket 1's facts were read ahead bounded by reply 101's transaction:
	// its thread 103 came later.
	for _, q := range pre.queries[0] {
		if q.TicketID == 1 && q.MaxThreadID != 101 {
			t.Errorf("ticket 1's facts bounded by thread %d, want 101", q.MaxThreadID)
		}
	}
	if pre.factCalls != 1 || seq.factCalls < 3 {
		t.Errorf("facts read %d times with Prefetch (want 1), %d without", pre.factCalls, seq.factCalls)
	}
	for _, table := range []string{"tickets", "users", "ticket_status"} {
		if pre.rowCalls[table] != 1 {
			t.Errorf("%s read %d times with Prefetch, want once", table, pre.rowCalls[table])
		}
	}
}

// TestPrefetchSkipsQuietUpdates: updates that fire no event (a sweep
// setting a column no event watches) read nothing ahead.
func TestPrefetchSkipsQuietUpdates(t *testing.T) {
	src := newMemSource()
	m, _ := newTestMapper(t, src, nil)
	var changes []change.Change
	for id := 1; id <= 100; id++ {
		changes = append(changes, upd(ticketRow(id, 5, 1, 1, nil), ticketRow(id, 5, 1, 1, nil)))
	}
	if err := m.Prefetch(context.Background(), []*change.Batch{txn(1, changes...), txn(2, changes[:1]...)}); err != nil {
		t.Fatal(err)
	}
	if src.factCalls != 0 || len(src.rowCalls) != 0 {
		t.Errorf("quiet updates read %d facts, rows %v", src.factCalls, src.rowCalls)
	}
}

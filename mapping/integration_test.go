package mapping_test

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingSource wraps a Source and counts what it is asked.
type countingSource struct {
	mapping.Source
	mu     sync.Mutex
	rows   map[string]map[int64]int // table -> id -> times asked
	facts  map[int64]int
	factsN int
}

func newCountingSource(s mapping.Source) *countingSource {
	return &countingSource{Source: s, rows: map[string]map[int64]int{}, facts: map[int64]int{}}
}

func (c *countingSource) Rows(ctx context.Context, table string, ids []int64) ([]*change.Row, error) {
	c.mu.Lock()
	if c.rows[table] == nil {
		c.rows[table] = map[int64]int{}
	}
	for _, id := range ids {
		c.rows[table][id]++
	}
	c.mu.Unlock()
	return c.Source.Rows(ctx, table, ids)
}

func (c *countingSource) Aggregate(ctx context.Context, a mapping.Aggregate) (map[int64]mapping.AggregateRow, error) {
	c.mu.Lock()
	c.factsN++
	for _, k := range a.Keys {
		c.facts[k.Value]++
	}
	c.mu.Unlock()
	return c.Source.Aggregate(ctx, a)
}

func (p *pipeline) lookup() *cdc.Lookup {
	p.t.Helper()
	l, err := cdc.NewLookup(p.ctx(), p.cfg, cdc.LookupOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(l.Close)
	return l
}

// TestReplayGivesSameEvents: the same transactions give the same events,
// ids and bytes — mapped again by a fresh mapper (a restart), from the
// start or from the middle of the stream (a restart resuming after the
// last acknowledged transaction).
func TestReplayGivesSameEvents(t *testing.T) {
	p := newPipeline(t)
	p.setup()
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>one</p>"))
	p.must(p.hd.ClientReply(p.ctx(), w.TicketID, testenv.ClientDave, "<p>two</p>"))
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentBob, "<p>three</p>"))
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusClosed))

	var batches []*change.Batch
	var first []mapping.Event
	cfg := mapping.Config{AppKey: testAppKey}
	p.stream(p.mapper(cfg, mapping.Options{}), streamOptions{onBatch: func(b *change.Batch, evs []mapping.Event) {
		batches = append(batches, b)
		first = append(first, evs...)
	}})
	if len(first) != 5 {
		t.Fatalf("%d events, want 5", len(first))
	}
	replay := func(from int) []mapping.Event {
		m, err := mapping.New(cfg, p.lookup(), mapping.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out []mapping.Event
		for _, b := range batches[from:] {
			evs, err := m.Map(p.ctx(), b)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		}
		return out
	}
	for _, from := range []int{0, 2, 3} {
		again := replay(from)
		want := first[len(first)-len(again):]
		if len(again) != len(want) || len(again) == 0 {
			t.Fatalf("replay from transaction %d: %d events, want %d", from, len(again), len(want))
		}
		for i := range again {
			a, b := again[i], want[i]
			if a.ID != b.ID || a.Type != b.Type || a.Index != b.Index || a.TicketID != b.TicketID ||
				!bytes.Equal(a.Payload, b.Payload) {
				t.Errorf("replay from %d, event %d (%s) differs:\n%s\n%s", from, i, a.Type, a.Payload, b.Payload)
			}
		}
	}
}

// TestNeverSeenRowsReadOnce: rows the stream never showed are read from
// the source once, then kept current by the stream.
func TestNeverSeenRowsReadOnce(t *testing.T) {
	p := newPipeline(t)
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.setup()
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>1</p>"))
	p.must(p.hd.ClientReply(p.ctx(), w.TicketID, testenv.ClientDave, "<p>2</p>"))
	p.exec(`UPDATE users SET first_name = 'Davey' WHERE id = $1`, testenv.ClientDave)
	p.must(p.hd.ClientReply(p.ctx(), w.TicketID, testenv.ClientDave, "<p>3</p>"))
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusOnHold))
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusOpen))

	src := newCountingSource(p.lookup())
	m, err := mapping.New(mapping.Config{}, src, mapping.Options{})
	if err != nil {
		t.Fatal(err)
	}
	events := p.stream(m, streamOptions{})
	if len(events) != 5 {
		t.Fatalf("%d events, want 5", len(events))
	}
	if src.factsN != 1 || src.facts[w.TicketID] != 1 || src.rows["tickets"][w.TicketID] != 1 {
		t.Errorf("ticket read %d times, facts %d times; want once", src.rows["tickets"][w.TicketID], src.factsN)
	}
	for table, ids := range src.rows {
		for id, n := range ids {
			if n != 1 {
				t.Errorf("%s %d read %d times", table, id, n)
			}
		}
	}
	if !strings.Contains(string(events[2].Payload), `"first_name":"Davey"`) {
		t.Errorf("the stream's user update is not shown: %s", events[2].Payload)
	}
	if !strings.Contains(string(events[2].Payload), `"thread_count":"4"`) {
		t.Errorf("thread count: %s", events[2].Payload)
	}
}

// TestBadRowsDoNotStopTheStream: rows the mapper cannot use are logged,
// counted and skipped; what follows maps as usual.
func TestBadRowsDoNotStopTheStream(t *testing.T) {
	p := newPipeline(t)
	p.setup()
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.exec(`INSERT INTO ticket_thread (ticket_id, user_id, poster, is_internal, body) VALUES (NULL, 5, 'client', 0, 'orphan')`)
	p.exec(`UPDATE ticket_status SET send_email = '{not json' WHERE id = $1`, testenv.StatusClosed)
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusClosed))
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>fine</p>"))

	reg := prometheus.NewRegistry()
	events := p.stream(p.mapper(mapping.Config{}, mapping.Options{Registerer: reg}), streamOptions{})
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, ","); got != "ticket_created,ticket_status_updated,ticket_reply" {
		t.Fatalf("events %s", got)
	}
	if !strings.Contains(string(events[1].Payload), `"send_email":null`) {
		t.Errorf("invalid send_email: %s", events[1].Payload)
	}
	const want = `
# HELP deskhook_mapping_bad_rows_total Row changes the mapper could not use (logged and skipped), by table.
# TYPE deskhook_mapping_bad_rows_total counter
deskhook_mapping_bad_rows_total{table="ticket_status"} 1
deskhook_mapping_bad_rows_total{table="ticket_thread"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "deskhook_mapping_bad_rows_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "deskhook_events_mapped_total", "ticket_reply")); n != 1 {
		t.Errorf("ticket_reply mapped: %v", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, event string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "event" && l.GetValue() == event {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no %s{event=%q}", name, event)
	return nil
}

// TestLargeTransactionBoundedMemory: one UPDATE of 100,000 tickets the
// mapper never saw — 100,000 ticket_status_updated events — is mapped
// chunk by chunk with the heap staying bounded.
func TestLargeTransactionBoundedMemory(t *testing.T) {
	const n = 100_000
	p := newPipeline(t)
	p.exec(`INSERT INTO tickets (id, ticket_number, user_id, dept_id, status, source, created_at, updated_at)
		SELECT g, 'AAAA-' || g, 5, 1, 1, 1, '2022-06-16 07:00:00', '2022-06-16 07:00:00' FROM generate_series(1, $1) g`, n)
	p.exec(`INSERT INTO ticket_thread (ticket_id, user_id, poster, is_internal, title, body, created_at, updated_at)
		SELECT g, 5, 'client', 0, 'subject ' || g, repeat('<p>body</p>', 20), '2022-06-16 07:00:00', '2022-06-16 07:00:00'
		FROM generate_series(1, $1) g`, n)
	p.exec(`SELECT setval(pg_get_serial_sequence('tickets', 'id'), $1)`, n)
	start := time.Now()
	p.setup()
	p.exec(`UPDATE tickets SET status = 3, updated_at = '2022-06-16 08:00:00'`)
	t.Logf("rows written in %s", time.Since(start))
	start = time.Now()

	m := p.mapper(mapping.Config{AppKey: testAppKey, StateSize: 1000}, mapping.Options{})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	count, chunks := 0, 0
	p.stream(m, streamOptions{maxBatchChanges: 1024, queueBytes: 4 << 20, onBatch: func(b *change.Batch, evs []mapping.Event) {
		count += len(evs)
		if chunks++; chunks%10 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		if len(evs) > 0 && !bytes.Contains(evs[0].Payload, []byte(`"name":"Closed"`)) {
			t.Errorf("unexpected payload %s", evs[0].Payload)
		}
	}})
	if count != n {
		t.Fatalf("%d events, want %d", count, n)
	}
	growth := int64(peak) - int64(base.HeapAlloc)
	t.Logf("%d events in %d chunks in %s; heap: base %d MB, peak %d MB", count, chunks, time.Since(start),
		base.HeapAlloc>>20, peak>>20)
	// The events themselves are ~2.5 KB each: 250 MB had they been held.
	if growth > 96<<20 {
		t.Errorf("heap grew by %d MB while mapping; want it bounded (< 96 MB)", growth>>20)
	}
}

package outbox

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// BenchmarkLog1M builds a store whose delivery log holds 1,000,000
// attempts (DESKHOOK_BENCH_LOG_ATTEMPTS to change it) and measures the
// queries the console and `deskhook log` make, one sub-benchmark each.
//
// The log: 200,000 events of 20,000 tickets (10 each) and five types over
// 7 days, each sent to two endpoints, "crm" (a failure, then delivered)
// and "erp" (two failures, then delivered; 1 in 100 dead instead): five
// attempts per event, fifty per ticket. The entries are written with the
// outbox's own code (g.logAttempt), in transactions of 10,000.
func BenchmarkLog1M(b *testing.B) {
	attempts := 1_000_000
	if v := os.Getenv("DESKHOOK_BENCH_LOG_ATTEMPTS"); v != "" {
		attempts, _ = strconv.Atoi(v)
	}
	events := attempts / 5
	tickets := max(events/10, 1)
	path := filepath.Join(b.TempDir(), "outbox.db")
	// No retention: nothing is pruned while the queries run (the entries
	// are written below with the log's own code, not through Record).
	o, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	if err := o.SetSubscriptions(ctx, []Subscription{{Name: "crm", Wants: all}, {Name: "erp", Wants: all}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	types := []string{mapping.TicketCreated, mapping.TicketReply, mapping.TicketStatusUpdated, mapping.TicketAssigned, mapping.TicketCommented}
	payload := bytes.Repeat([]byte("x"), 300)
	base := time.Now().Add(-7 * 24 * time.Hour).Truncate(time.Hour)
	step := 7 * 24 * time.Hour / time.Duration(events)
	for i := 0; i < events; i += 5 {
		pos := change.Position(i/5 + 1)
		evs := make([]mapping.Event, 0, 5)
		for j := 0; j < 5 && i+j < events; j++ {
			n := i + j
			e := event(pos, uint32(j), int64(n%tickets)+1, types[n%len(types)])
			e.CommitTime = base.Add(time.Duration(n) * step)
			e.Payload = payload
			evs = append(evs, e)
		}
		if err := o.Append(ctx, pos, true, evs); err != nil {
			b.Fatal(err)
		}
	}
	if err := o.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// The attempts, in time order as the daemon writes them.
	const perTx = 10000
	written := 0
	for i := 0; i < events; {
		err := o.do(ctx, func(g *group) error {
			for end := min(i+perTx/5, events); i < end; i++ {
				k := Key{Pos: change.Position(i/5 + 1), Index: uint32(i % 5)}
				kb := k.bytes()
				ticket := int64(i%tickets) + 1
				at := base.Add(time.Duration(i) * step)
				rs := []Result{
					{Endpoint: "crm", Key: k, Outcome: Retry, Next: at.Add(5 * time.Second), Attempt: Attempt{At: at, Status: 503, Response: "busy", Latency: 30 * time.Millisecond}},
					{Endpoint: "erp", Key: k, Outcome: Retry, Next: at.Add(5 * time.Second), Attempt: Attempt{At: at.Add(time.Millisecond), Error: "connection refused"}},
					{Endpoint: "crm", Key: k, Outcome: Delivered, Attempt: Attempt{At: at.Add(5 * time.Second), Status: 200, Latency: 20 * time.Millisecond}},
					{Endpoint: "erp", Key: k, Outcome: Retry, Next: at.Add(35 * time.Second), Attempt: Attempt{At: at.Add(5 * time.Second), Status: 500, Response: "internal error"}},
					{Endpoint: "erp", Key: k, Outcome: Delivered, Attempt: Attempt{At: at.Add(35 * time.Second), Status: 202}},
				}
				if i%100 == 0 {
					rs[4].Outcome, rs[4].Attempt.Status, rs[4].Attempt.Error = Dead, 0, "timeout: context deadline exceeded"
				}
				for n := range rs {
					attempt := 1 + n/2
					if err := g.logAttempt(&rs[n], kb, ticket, attempt); err != nil {
						return err
					}
					written++
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	st, err := o.LogStats()
	if err != nil || st.Entries != int64(written) {
		b.Fatalf("log stats %+v %v, want %d entries", st, err, written)
	}
	fi, _ := os.Stat(path)
	b.Logf("built %d attempts of %d events in %s: file %d MiB, log %d MiB", written, events, time.Since(start).Round(time.Second),
		fi.Size()>>20, st.Bytes>>20)

	rng := rand.New(rand.NewSource(1))
	ticket := func() int64 { return int64(rng.Intn(tickets)) + 1 }
	day := func() (time.Time, time.Time) {
		from := base.Add(time.Duration(rng.Intn(6*24)) * time.Hour)
		return from, from.Add(time.Hour)
	}
	query := func(name string, wantIndex string, mk func() LogQuery) {
		b.Run(name, func(b *testing.B) {
			entries := 0
			for i := 0; i < b.N; i++ {
				p, err := o.Log(mk())
				if err != nil {
					b.Fatal(err)
				}
				if p.Index != wantIndex {
					b.Fatalf("answered by index %q, want %q", p.Index, wantIndex)
				}
				entries += len(p.Entries)
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
		})
	}
	query("ticket", "ticket", func() LogQuery { return LogQuery{TicketID: ticket()} })
	query("ticket_limit_1000", "ticket", func() LogQuery { return LogQuery{TicketID: ticket(), Limit: 1000} })
	query("ticket_failed", "ticket", func() LogQuery { return LogQuery{TicketID: ticket(), Outcomes: []Outcome{Retry, Dead}} })
	query("event", "event", func() LogQuery {
		n := rng.Intn(events)
		return LogQuery{EventID: mapping.EventID(change.Position(n/5+1), uint32(n%5))}
	})
	query("endpoint", "endpoint", func() LogQuery { return LogQuery{Endpoint: "erp"} })
	query("endpoint_dead", "endpoint", func() LogQuery { return LogQuery{Endpoint: "erp", Outcomes: []Outcome{Dead}} })
	query("endpoint_hour", "endpoint", func() LogQuery {
		from, to := day()
		return LogQuery{Endpoint: "crm", Since: from, Until: to}
	})
	query("type", "type", func() LogQuery { return LogQuery{EventType: mapping.TicketAssigned} })
	// Dead attempts are of ticket_created events only (1 in 100 of them):
	// the type index, the outcome checked on each entry.
	query("type_dead", "type", func() LogQuery { return LogQuery{EventType: mapping.TicketCreated, Outcomes: []Outcome{Dead}} })
	// None match: the query stops after maxLogScan keys, with a cursor.
	query("type_dead_none", "type", func() LogQuery { return LogQuery{EventType: mapping.TicketAssigned, Outcomes: []Outcome{Dead}} })
	query("outcome_dead", "outcome", func() LogQuery { return LogQuery{Outcomes: []Outcome{Dead}} })
	query("time_hour", "time", func() LogQuery {
		from, to := day()
		return LogQuery{Since: from, Until: to}
	})
	query("newest", "time", func() LogQuery { return LogQuery{} })
	b.Run("event_details", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := rng.Intn(events)
			if _, err := o.Event(mapping.EventID(change.Position(n/5+1), uint32(n%5))); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What an attempt costs the disk with a large log: commits of 300
	// results, written with the log's own code; pages bbolt writes per
	// attempt. "in_order": the next events in key order, as a sender
	// working through its queue makes them; "spread": any of the newest
	// 10,000 events (retries all over a busy hour).
	next := events / 2
	for _, c := range []struct {
		name string
		pick func() int
	}{
		{"write_300_in_order", func() int { next = (next + 1) % events; return next }},
		{"write_300_spread", func() int { return events - 1 - rng.Intn(min(events, 10000)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			at := base.Add(8 * 24 * time.Hour)
			start := pagesWritten(o)
			for i := 0; i < b.N; i++ {
				err := o.do(ctx, func(g *group) error {
					for j := 0; j < 300; j++ {
						n := c.pick()
						k := Key{Pos: change.Position(n/5 + 1), Index: uint32(n % 5)}
						at = at.Add(time.Millisecond)
						r := Result{Endpoint: "crm", Key: k, Outcome: Delivered, Attempt: Attempt{At: at, Status: 200}}
						if err := g.logAttempt(&r, k.bytes(), int64(n%tickets)+1, 1); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(pagesWritten(o)-start)/float64(300*b.N), "pages/attempt")
		})
	}
	b.Run("events_of_ticket", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := o.Events(EventQuery{TicketID: ticket()})
			if err != nil || len(p.Events) == 0 {
				b.Fatal(fmt.Sprint(p, err))
			}
		}
	})
}

package sender

import (
	"context"
	"slices"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The dispatcher learns of work from notices and its reads of the store; a
// mistake there (a lost wake-up) would leave events in the store that it
// never sends. As a safety net, it compares now and then what the store
// holds with what it accounts for: entries in memory or left behind a
// ticket's gap before its cursor, and after the cursor nothing unless it
// knows it must read on. Finding something is a bug: it is logged as an
// error and counted (deskhook_sender_stalls_total), and the queue is read
// again from the start so the events still go out.

const stallMessage = "BUG: delivery stalled: the outbox holds events this endpoint's reader passed over; " +
	"reading its queue again so they go out. Please report this with the log around it."

// stallCheckEvery is how often the comparison runs.
const stallCheckEvery = time.Minute

func (ep *endpoint) stallCheckInterval() time.Duration {
	if d := ep.s.hooks.stallCheckEvery; d > 0 {
		return d
	}
	return stallCheckEvery
}

// checkStall runs the comparison when it is due. Entries it finds are
// looked for a second time after another flush: an operator's replay puts
// entries back behind the cursor, and its notice (telling the reader to
// start over) may come after the first look.
func (ep *endpoint) checkStall(now time.Time) {
	d := &ep.d
	if now.Sub(d.lastStallCheck) < ep.stallCheckInterval() || d.reading || d.disabled {
		return
	}
	d.lastStallCheck = now
	lost := ep.unaccounted(nil)
	if len(lost) > 0 {
		lost = ep.unaccounted(lost)
	}
	if len(lost) == 0 {
		return
	}
	ep.log.Error(stallMessage,
		"first_keys", lost[:min(len(lost), 10)], "cursor", d.cursor.String(), "committed", d.committed.String(),
		"in_memory", d.loaded, "in_flight", len(d.inFlight))
	ep.m.stalled()
	ep.reset()
}

// unaccounted returns pending entries of the store that the dispatcher
// does not account for, among only (all when nil).
func (ep *endpoint) unaccounted(only []outbox.Key) []outbox.Key {
	d := &ep.d
	// Results of finished requests are committed first: until then the
	// store still holds entries the dispatcher is done with. Nothing new
	// finishes meanwhile (completions are this goroutine's).
	ep.flushResults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stored := ep.s.ob.Position()
	if err := ep.s.ob.Flush(ctx); err != nil {
		return nil
	}
	// The notices of the commits up to stored are in the inbox now (the
	// flush waited for them). Once they are taken, every entry up to stored
	// is read (up to the cursor) or to be read (needScan).
	ep.takeInbox()
	if d.reading || d.disabled {
		return nil
	}
	until := endKey(stored)
	if d.needScan && d.cursor.Less(until) {
		until = d.cursor
	}
	if until == (outbox.Key{}) {
		return nil // nothing read yet (the zero Until would mean everything)
	}
	var lost []outbox.Key
	after := outbox.Key{}
	for {
		page, err := ep.s.ob.Pending(ep.name, outbox.PendingQuery{After: after, Until: until, Max: 1,
			Filter: func(k outbox.Key, ticket int64) bool {
				if !ep.holds(k, ticket) && (only == nil || slices.Contains(only, k)) && len(lost) < 100 {
					lost = append(lost, k)
				}
				return false // events are not read
			}})
		if err != nil {
			return nil
		}
		if page.End || page.Last == after {
			return lost
		}
		after = page.Last
	}
}

// holds says the dispatcher accounts for a pending entry of the store: it
// is in memory (queued, in flight, or in flight at the last reset), or was
// left in the store behind its ticket's gap, to be rescanned.
func (ep *endpoint) holds(k outbox.Key, ticket int64) bool {
	d := &ep.d
	if d.inFlight[k] || d.stale[k] {
		return true
	}
	t := d.tickets[ticket]
	if t == nil {
		return false
	}
	if t.gap && t.gapAfter.Less(k) && !d.cursor.Less(k) {
		return true
	}
	for _, e := range t.q {
		if e.key == k {
			return true
		}
	}
	return false
}

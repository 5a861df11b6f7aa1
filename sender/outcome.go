package sender

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/backoff"
	"github.com/deskhook/deskhook/outbox"
)

// The window's ticket queues: entries come in (add), heads go out
// (dispatch), and each attempt's outcome moves the ticket on (complete).

// add appends a pending entry to its ticket's queue.
func (ep *endpoint) add(dl outbox.Delivery) {
	d := &ep.d
	id := dl.Event.TicketID
	t := d.tickets[id]
	if t == nil {
		t = d.free.ticket(id)
		d.tickets[id] = t
	}
	e := d.free.entry()
	*e = entry{key: dl.Key, ev: dl.Event, size: dl.Size, attempts: dl.Attempts, next: dl.Next}
	switch {
	case !e.holds():
	case d.loadedBytes+e.size > ep.windowBytes:
		e.ev.Payload = nil // no room (a read raced another): read it when its turn comes
	default:
		d.loadedBytes += e.size
	}
	if e.attempts == 0 && e.next.IsZero() && ep.cfg.Retry.Schedule[0] > 0 {
		e.next = time.Now().Add(backoff.Spread(ep.cfg.Retry.Schedule[0], scheduleJitter))
	}
	t.q = append(t.q, e)
	d.loaded++
	if len(t.q) == 1 && !t.busy {
		ep.schedule(t)
	}
}

// schedule puts an idle ticket with entries in the ready queue or the
// timer heap, by its head's time.
func (ep *endpoint) schedule(t *ticketQ) {
	if next := t.q[0].next; !next.IsZero() && next.After(time.Now()) {
		ep.d.timers.add(t)
	} else {
		ep.d.ready.push(t)
	}
}

// pop removes a ticket's head after its final outcome.
func (ep *endpoint) pop(t *ticketQ) {
	d := &ep.d
	ep.forget(t.q[0])
	d.free.putEntry(t.q[0])
	t.q[0] = nil
	t.q = t.q[1:]
	d.loaded--
	switch {
	case len(t.q) > 0:
		ep.schedule(t)
	case t.gap:
		d.rescan[t.id] = t
	default:
		delete(d.tickets, t.id)
		d.free.putTicket(t)
	}
}

// dispatch hands due heads to the workers, up to max_in_flight.
func (ep *endpoint) dispatch(work chan<- job) {
	d := &ep.d
	now := time.Now()
	d.timers.popDue(now, &d.ready)
	if d.disabled || now.Before(d.holdUntil) {
		return
	}
	for len(d.inFlight) < ep.cfg.MaxInFlight {
		t := d.ready.pop()
		if t == nil {
			return
		}
		if t.busy || len(t.q) == 0 {
			continue
		}
		t.busy = true
		d.inFlight[t.q[0].key] = true
		work <- job{t: t, e: t.q[0]}
	}
}

// complete applies an attempt's outcome: the ticket's next entry, a retry
// at the schedule's (or Retry-After's) time, or a dead letter.
func (ep *endpoint) complete(r jobDone) {
	d := &ep.d
	t, e, res := r.t, r.e, r.res
	t.busy = false
	delete(d.inFlight, e.key)
	switch res.verdict {
	case verdictCanceled:
		ep.schedule(t)
		return
	case verdictVanished:
		ep.pop(t)
		return
	}
	ep.m.attempt(e.ev.Type, res)
	result := outbox.Result{Endpoint: ep.name, Key: e.key, Attempt: res.attempt}
	switch res.verdict {
	case verdictOK:
		result.Outcome = outbox.Delivered
		ep.m.outcome(e.ev.Type, "delivered")
		ep.succeeded()
		ep.pop(t)
	case verdictBroken:
		result.Outcome = outbox.Dead
		ep.m.outcome(e.ev.Type, "dead")
		ep.log.Error("event cannot be sent: dead letter", "id", e.ev.ID, "err", res.attempt.Error)
		ep.pop(t)
	default:
		if res.verdict == verdictGone {
			ep.disableGone(res.attempt)
		}
		now := time.Now()
		n := e.attempts + 1
		if n >= len(ep.cfg.Retry.Schedule) {
			result.Outcome = outbox.Dead
			ep.m.outcome(e.ev.Type, "dead")
			ep.log.Warn("retries exhausted: event is a dead letter (deskhook dlq show / replay)",
				append([]any{"id", e.ev.ID, "ticket", e.ev.TicketID, "attempts", n}, attemptAttrs(res.attempt)...)...)
			if res.verdict != verdictGone {
				ep.failed(res.attempt, -1)
			}
			ep.pop(t)
			break
		}
		delay := backoff.Spread(ep.cfg.Retry.Schedule[n], scheduleJitter)
		if res.retryAfter > 0 {
			ra := min(res.retryAfter, ep.retryAfterCap)
			delay = max(delay, ra)
			d.holdUntil = later(d.holdUntil, now.Add(ra))
		}
		e.attempts, e.next = n, now.Add(delay)
		ep.park(e)
		result.Outcome, result.Next = outbox.Retry, e.next
		ep.m.outcome(e.ev.Type, "failed")
		ep.log.Debug("attempt failed", append([]any{"id", e.ev.ID, "attempt", n, "retry_in", delay},
			attemptAttrs(res.attempt)...)...)
		if res.verdict != verdictGone {
			ep.failed(res.attempt, delay)
		}
		ep.schedule(t)
	}
	d.results = append(d.results, result)
}

// disableGone disables the endpoint after a 410 Gone: the receiver says it
// wants nothing more. Its events keep queueing until an operator enables
// it again.
func (ep *endpoint) disableGone(a outbox.Attempt) {
	if ep.d.disabled {
		return
	}
	ep.d.disabled = true
	url := RedactURL(ep.cfg.URL)
	ep.log.Warn("endpoint answered 410 Gone: it is disabled and nothing is sent to it until an operator enables it "+
		"(deskhook endpoints enable "+ep.name+"); its events keep queueing",
		"url", url, "status", a.Status, "response", excerpt(a.Response, maxExcerpt))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ep.s.ob.Disable(ctx, ep.name, outbox.DisabledByGone, "HTTP 410 Gone from "+url); err != nil {
		ep.log.Error("disabling the endpoint after 410 Gone", "err", err)
	}
}

func (ep *endpoint) flushResults() {
	if len(ep.d.results) > 0 {
		ep.s.ob.Record(ep.d.results...)
		ep.d.results = ep.d.results[:0]
	}
}

// scheduleJitter spreads each delay of a retry schedule by ±20%.
const scheduleJitter = 0.2

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

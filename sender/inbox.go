package sender

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The dispatcher learns of new deliveries from the outbox's notices: early
// ones carry the events of each transaction as it is queued, before it is
// written (taken straight into the window when it is caught up), committed
// ones send it to the store for whatever it could not take.

// notify is called by Append and the outbox's committer: it must not block.
func (ep *endpoint) notify(n outbox.Notice) {
	if h := ep.s.hooks.dropNotice; h != nil && h(ep.name, n) {
		return
	}
	wake := true
	ep.inMu.Lock()
	k := len(ep.inbox)
	switch {
	case !n.Committed && ep.inboxEvents+len(n.Events) > ep.window:
		// Too much waiting already: the committed notice will send the
		// reader to the store instead.
	case !n.Committed && k > 0 && !ep.inbox[k-1].Committed && ep.inbox[k-1].To == n.From:
		// The next transaction: one notice for both (the events slices
		// are each notice's own).
		last := &ep.inbox[k-1]
		last.To = n.To
		last.Events = append(last.Events, n.Events...)
		ep.inboxEvents += len(n.Events)
		wake = len(n.Events) > 0
	case n.Committed && k > 0 && ep.inbox[k-1].Committed:
		last := &ep.inbox[k-1] // the reader acts on the latest anyway: merge
		last.To = max(last.To, n.To)
		last.Reset = last.Reset || n.Reset
		last.State = last.State || n.State
	default:
		ep.inboxEvents += len(n.Events)
		ep.inbox = append(ep.inbox, n)
		// A transaction with nothing for this endpoint only moves the
		// notices' chain on: the reader learns of it with the next wake-up.
		wake = n.Committed || len(n.Events) > 0
	}
	ep.inMu.Unlock()
	if wake {
		select {
		case ep.wake <- struct{}{}:
		default:
		}
	}
}

func (ep *endpoint) refreshState() {
	st, err := ep.s.ob.Endpoint(ep.name)
	if err != nil {
		ep.log.Error("reading the endpoint's state", "err", err)
		return
	}
	if st.Disabled != ep.d.disabled {
		if st.Disabled {
			ep.log.Warn("endpoint disabled: nothing is sent until it is enabled again",
				"by", st.DisabledBy, "reason", st.DisabledReason)
		} else {
			ep.log.Info("endpoint enabled")
			ep.d.needScan = true
		}
	}
	ep.d.disabled = st.Disabled
}

func (ep *endpoint) takeInbox() {
	d := &ep.d
	ep.inMu.Lock()
	notices := ep.inbox
	ep.inbox, ep.inboxEvents = d.inboxSpare[:0], 0 // two slices take turns
	ep.inMu.Unlock()
	defer func() {
		clear(notices)
		d.inboxSpare = notices
	}()
	for _, n := range notices {
		if !n.Committed {
			ep.holdEarly(n)
			continue
		}
		d.committed = max(d.committed, n.To)
		if n.State {
			ep.refreshState()
		}
		if n.Reset {
			ep.reset()
		}
		if d.cursor.Less(endKey(n.To)) {
			d.needScan = true
		}
	}
	ep.applyEarly()
}

// holdEarly keeps an early notice until the window can take its events:
// once everything before them is read (the cursor is at or past From).
// Until then the reader reads the store, which catches up with the
// notices at the next commit; from there on the early notices feed the
// window again, ahead of the commits.
func (ep *endpoint) holdEarly(n outbox.Notice) {
	d := &ep.d
	// Bounded by events and by notices: a filtered endpoint gets many
	// notices without events for it while its window is full.
	if d.disabled || d.earlyEvents+len(n.Events) > ep.window || len(d.early) >= ep.window {
		ep.dropEarly()
		return
	}
	d.early = append(d.early, n)
	d.earlyEvents += len(n.Events)
}

// dropEarly forgets the early notices held: their events are read from
// the store (their committed notices send the reader there).
func (ep *endpoint) dropEarly() {
	d := &ep.d
	clear(d.early)
	d.early, d.earlyEvents = d.early[:0], 0
	d.needScan = true
}

// applyEarly takes the events of the early notices that the cursor has
// reached, in order, skipping those read from the store meanwhile.
func (ep *endpoint) applyEarly() {
	d := &ep.d
	i := 0
	for ; i < len(d.early); i++ {
		n := &d.early[i]
		if !d.cursor.Less(endKey(n.To)) {
			continue // read from the store already
		}
		if d.cursor.Less(endKey(n.From)) {
			break // the store is not read up to it yet
		}
		if d.disabled || d.loaded+len(n.Events) > ep.window {
			ep.dropEarly()
			return
		}
		for _, ev := range n.Events {
			k := outbox.KeyOf(ev)
			if !d.cursor.Less(k) {
				continue // read from the store
			}
			if t := d.tickets[ev.TicketID]; t != nil && t.gap {
				continue // left for the ticket's rescan
			}
			ep.add(outbox.Delivery{Key: k, Event: ev})
		}
		d.cursor = endKey(n.To)
	}
	if i > 0 {
		for _, n := range d.early[:i] {
			d.earlyEvents -= len(n.Events)
		}
		n := copy(d.early, d.early[i:])
		clear(d.early[n:])
		d.early = d.early[:n]
	}
}

// reset drops what is in memory, except requests in flight, and rereads
// the queue from the start (entries appeared behind the cursor).
func (ep *endpoint) reset() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep.flushResults()
	_ = ep.s.ob.Flush(ctx) // so the store shows what was delivered
	d := &ep.d
	d.ready.reset()
	d.timers.reset()
	d.loaded = 0
	d.stale = make(map[outbox.Key]bool, len(d.inFlight))
	for k := range d.inFlight {
		d.stale[k] = true
	}
	for id, t := range d.tickets {
		t.gap = false
		if t.busy {
			t.q = t.q[:1]
			d.loaded++
		} else {
			delete(d.tickets, id)
		}
	}
	clear(d.rescan)
	d.cursor, d.needScan = outbox.Key{}, true
	// Early notices held stay: they apply once the store is read up to
	// them again.
	d.gen++ // a page being read now is stale
}

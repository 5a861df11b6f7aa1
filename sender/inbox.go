package sender

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The dispatcher learns of new deliveries from the outbox's notices: early
// ones carry the events of a group commit before its fsync (taken straight
// into the window when it is caught up), committed ones send it to the
// store for whatever it could not take.

// notify is called by the outbox's committer: it must not block.
func (ep *endpoint) notify(n outbox.Notice) {
	ep.inMu.Lock()
	k := len(ep.inbox)
	switch {
	case !n.Committed && ep.inboxEvents+len(n.Events) > ep.window:
		// Too much waiting already: the committed notice will send the
		// reader to the store instead.
	case n.Committed && k > 0 && ep.inbox[k-1].Committed:
		last := &ep.inbox[k-1] // the reader acts on the latest anyway: merge
		last.To = max(last.To, n.To)
		last.Reset = last.Reset || n.Reset
		last.State = last.State || n.State
	default:
		ep.inboxEvents += len(n.Events)
		ep.inbox = append(ep.inbox, n)
	}
	ep.inMu.Unlock()
	select {
	case ep.wake <- struct{}{}:
	default:
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
	ep.inMu.Lock()
	notices := ep.inbox
	ep.inbox, ep.inboxEvents = nil, 0
	ep.inMu.Unlock()
	d := &ep.d
	for _, n := range notices {
		if !n.Committed {
			// Early notice: take the events directly when the window has
			// read everything before them and has room; otherwise the
			// committed notice sends the reader to the store.
			if !d.disabled && !d.reading && d.cursor == endKey(n.From) && d.loaded+len(n.Events) <= ep.window {
				for _, ev := range n.Events {
					if t := d.tickets[ev.TicketID]; t != nil && t.gap {
						continue // left for the ticket's rescan
					}
					ep.add(outbox.Delivery{Key: outbox.KeyOf(ev), Event: ev})
				}
				d.cursor = endKey(n.To)
			}
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
	d.gen++ // a page being read now is stale
}

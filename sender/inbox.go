package sender

import (
	"context"
	"sync"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The dispatcher learns of new deliveries from the outbox's notices, one
// after each commit: they only say how far the store now goes, and the
// dispatcher reads it from its cursor on (window.go). Every event it sends
// is thus read from the store, durable: after a crash the same event goes
// out again with the same body.

// inbox holds the notices the dispatcher has not taken yet, merged into
// one: it acts on the latest position and on any flag anyway.
type inbox struct {
	mu sync.Mutex
	n  outbox.Notice
}

// notify is called by the outbox's committer: it must not block.
func (ep *endpoint) notify(n outbox.Notice) {
	in := &ep.in
	in.mu.Lock()
	in.n.To = max(in.n.To, n.To)
	in.n.Reset = in.n.Reset || n.Reset
	in.n.State = in.n.State || n.State
	in.mu.Unlock()
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
	in := &ep.in
	in.mu.Lock()
	n := in.n
	in.n = outbox.Notice{}
	in.mu.Unlock()
	if n == (outbox.Notice{}) {
		return
	}
	d := &ep.d
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
	d.loaded, d.loadedBytes = 0, 0
	d.stale = make(map[outbox.Key]bool, len(d.inFlight))
	for k := range d.inFlight {
		d.stale[k] = true
	}
	for id, t := range d.tickets {
		t.gap = false
		if t.busy {
			t.q = t.q[:1]
			d.loaded++
			if t.q[0].holds() {
				d.loadedBytes += t.q[0].size
			}
		} else {
			delete(d.tickets, id)
		}
	}
	clear(d.rescan)
	d.cursor, d.needScan = outbox.Key{}, true
	d.gen++ // a page being read now is stale
}

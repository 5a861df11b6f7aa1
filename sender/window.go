package sender

import (
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The dispatcher holds at most `window` pending entries in memory and reads
// the rest from the outbox as room frees up. Entries of a ticket wait behind
// its head; when the window fills with such followers while their heads
// wait for retries, the followers are left in the store (the ticket gets a
// gap) so other tickets keep moving, and are read again when the head is
// done (a rescan). A failing ticket thus holds back only its own events,
// in bounded memory.

// room is how many more entries the window takes. Entries come in only
// through add (read pages, rescans) and leave only through pop and reset,
// so the window's bound is d.loaded against this alone. Their payloads are
// bounded in bytes apart (roomBytes, memory.go): an entry whose payload
// does not fit comes without it.
func (ep *endpoint) room() int { return ep.window - ep.d.loaded }

// readPage is how many entries one read of the store asks for.
const readPage = 512

type readReq struct {
	gen int
	q   outbox.PendingQuery
}

type readResp struct {
	gen  int
	page outbox.PendingPage
	err  error
}

// load is the loader goroutine: it reads pages of the queue for the
// dispatcher.
func (ep *endpoint) load() {
	for req := range ep.reads {
		page, err := ep.s.ob.Pending(ep.name, req.q)
		if h := ep.s.hooks.afterRead; h != nil {
			h(ep.name)
		}
		ep.pages <- readResp{gen: req.gen, page: page, err: err}
	}
}

// fill asks the loader for what the window has room for, and rescans the
// gaps of tickets that became free.
func (ep *endpoint) fill() {
	d := &ep.d
	if d.disabled {
		return
	}
	now := time.Now()
	if len(d.rescan) > 0 && now.Sub(d.lastRescan) >= rescanEvery {
		ep.rescanGaps(now)
	}
	if !d.needScan || d.reading || now.Before(d.retryRead) {
		return
	}
	if ep.room() <= 0 {
		ep.compactIfStuck()
	}
	room := ep.room()
	idle := d.ready.len() == 0 && len(d.inFlight) < ep.cfg.MaxInFlight
	if room >= min(readPage, ep.window/2) || (room > 0 && idle) {
		d.reading = true
		ep.reads <- readReq{gen: d.gen, q: outbox.PendingQuery{After: d.cursor, Max: min(room, readPage),
			MaxBytes: ep.payloadBudget()}}
	}
}

// applyPage takes a page the loader read. Entries in flight (after a reset)
// and entries of tickets with a gap (left for their rescan) are passed over.
func (ep *endpoint) applyPage(p readResp) {
	d := &ep.d
	d.reading = false
	if p.gen != d.gen {
		return // read before a reset; needScan is still set
	}
	if p.err != nil {
		ep.readFailed(p.err)
		return
	}
	for _, dl := range p.page.Deliveries {
		if d.inFlight[dl.Key] || d.stale[dl.Key] {
			continue
		}
		if t := d.tickets[dl.Event.TicketID]; t != nil && t.gap {
			continue
		}
		ep.add(dl)
	}
	if d.cursor.Less(p.page.Last) {
		d.cursor = p.page.Last
	}
	// The page shows the store as of its read. A notice taken while it was
	// out may lie beyond it: the page's end does not end the scan then.
	d.needScan = !p.page.End || d.cursor.Less(endKey(d.committed))
}

// rescanGaps reads the left-behind entries of tickets whose in-memory
// entries are all done.
func (ep *endpoint) rescanGaps(now time.Time) {
	d := &ep.d
	d.lastRescan = now
	until := d.cursor // what lies beyond is read by fill
	from := until
	for _, t := range d.rescan {
		if t.gapAfter.Less(from) {
			from = t.gapAfter
		}
	}
	page, err := ep.s.ob.Pending(ep.name, outbox.PendingQuery{
		After: from,
		Until: until,
		Max:   max(ep.room(), 64),
		Filter: func(k outbox.Key, ticket int64) bool {
			t := d.rescan[ticket]
			return t != nil && t.gapAfter.Less(k)
		},
		MaxBytes: ep.payloadBudget(),
	})
	if err != nil {
		ep.readFailed(err)
		return
	}
	for _, dl := range page.Deliveries {
		ep.add(dl)
	}
	for id, t := range d.rescan {
		switch {
		case page.End:
			t.gap = false
			delete(d.rescan, id)
			if len(t.q) == 0 && !t.busy {
				delete(d.tickets, id)
				d.free.putTicket(t)
			}
		case len(t.q) > 0:
			t.gapAfter = page.Last
			delete(d.rescan, id) // moving again; still has a gap after page.Last
		default:
			t.gapAfter = page.Last
		}
	}
}

// compactIfStuck leaves followers in the store when they fill the window.
func (ep *endpoint) compactIfStuck() {
	d := &ep.d
	followers := 0
	for _, t := range d.tickets {
		if len(t.q) > 1 {
			followers += len(t.q) - 1
		}
	}
	if followers <= ep.window/2 {
		return
	}
	for _, t := range d.tickets {
		if len(t.q) <= 1 {
			continue
		}
		after := prevKey(t.q[1].key)
		if !t.gap || after.Less(t.gapAfter) {
			t.gapAfter = after
		}
		t.gap = true
		for i := 1; i < len(t.q); i++ {
			ep.forget(t.q[i])
			t.q[i] = nil
		}
		d.loaded -= len(t.q) - 1
		t.q = t.q[:1]
	}
	ep.log.Debug("window full of entries waiting behind failing tickets: left them in the store",
		"followers", followers)
}

func (ep *endpoint) readFailed(err error) {
	ep.d.retryRead = time.Now().Add(time.Second)
	ep.log.Error("reading the endpoint's queue from the outbox", "err", err)
}

package outbox

import (
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// The early notice is sent by Append itself, in the caller's goroutine, as
// soon as a transaction is queued: the path from the source to the
// receivers then waits neither for the committer to finish the commit it
// is in (two fsyncs, longer on a busy disk) nor for it to write the new
// transaction. The planner decides, in queue order, what the committer
// will do with each append as far as notices care: which transactions are
// skipped as already stored, which complete, and which endpoints want which
// events. The committer keeps its own state and sends the committed
// notices.

// planner is Append's view of the queue. Its fields are guarded by
// Outbox.planLock, which Append holds from planning to queueing, so that the
// order of plans is the order of the queue.
type planner struct {
	stored  change.Position // the highest complete transaction queued or stored
	maxKey  Key             // the highest event key queued or stored
	openTxn change.Position // a transaction with chunks queued but not its last one
	// abandoned is the highest transaction whose chunks were queued but
	// which was never completed: its events become deliverable with the
	// next complete transaction after it, which then cannot have an early
	// notice (the notice would not carry them).
	abandoned change.Position
	subs      []Subscription // as of the end of the queue
}

// earlyNotice is a notice and the subscription's Notify to send it to.
type earlyNotice struct {
	notify func(Notice)
	n      Notice
}

// plan notes one append and returns the early notices it gives, one per
// subscription with a Notify (nil when it gives none). An early notice is
// only given for a transaction appended in one piece that is new and
// follows the previous one directly: its events are then every new
// delivery between the two positions. Anything else (a transaction in
// chunks, one resent after a restart while incomplete, one after an
// abandoned transaction) leaves the endpoints to the committed notice,
// which sends their readers to the store.
func (p *planner) plan(pos change.Position, last bool, events []mapping.Event) []earlyNotice {
	if pos <= p.stored {
		return nil // skipped by the committer
	}
	if p.openTxn != 0 && p.openTxn != pos {
		p.abandoned = max(p.abandoned, p.openTxn)
		p.openTxn = 0
	}
	whole := last && p.openTxn == 0 && !(p.stored < p.abandoned && p.abandoned <= pos)
	if len(events) > 0 {
		if k := KeyOf(&events[0]); !p.maxKey.Less(k) {
			whole = false // keys stored before: the committer merges them with the store
		}
		if k := KeyOf(&events[len(events)-1]); p.maxKey.Less(k) {
			p.maxKey = k
		}
	}
	from := p.stored
	if last {
		p.stored, p.openTxn = pos, 0
	} else {
		p.openTxn = pos
	}
	if !whole {
		return nil
	}
	var notices []earlyNotice
	for i := range p.subs {
		s := &p.subs[i]
		if s.Notify == nil {
			continue
		}
		var evs []*mapping.Event
		if s.Wants != nil {
			for j := range events {
				if s.Wants(&events[j]) {
					if evs == nil {
						evs = make([]*mapping.Event, 0, len(events)-j)
					}
					evs = append(evs, &events[j])
				}
			}
		}
		if notices == nil {
			notices = make([]earlyNotice, 0, len(p.subs))
		}
		notices = append(notices, earlyNotice{notify: s.Notify, n: Notice{From: from, To: pos, Events: evs}})
	}
	return notices
}

package sender

import (
	"container/heap"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// entry is one pending delivery held in memory.
type entry struct {
	key      outbox.Key
	ev       *mapping.Event // its Payload is nil while the store holds it (memory.go)
	size     int            // the payload's length
	attempts int
	next     time.Time // zero: due now
}

// ticketQ is one ticket's entries for an endpoint, in order. Only the head
// is ever sent; the others wait for it (per-ticket FIFO).
type ticketQ struct {
	id    int64
	q     []*entry
	busy  bool // the head is in flight
	ready bool // in the ready queue
	timer int  // index in the timer heap, -1 when not in it
	// gap: some of the ticket's pending entries were left in the store to
	// bound memory; all entries up to gapAfter are in q (or done).
	gap      bool
	gapAfter outbox.Key
}

// freeLists keep the entries and ticket queues the window is done with,
// for the next ones: a delivery then allocates neither. Only what is
// referenced nowhere else goes back (a popped head, a ticket gone from
// the map, the ready queue and the timer heap).
type freeLists struct {
	entries []*entry
	tickets []*ticketQ
}

const maxFree = 1024

func (f *freeLists) entry() *entry {
	if n := len(f.entries); n > 0 {
		e := f.entries[n-1]
		f.entries = f.entries[:n-1]
		return e
	}
	return &entry{}
}

func (f *freeLists) putEntry(e *entry) {
	if len(f.entries) < maxFree {
		*e = entry{}
		f.entries = append(f.entries, e)
	}
}

func (f *freeLists) ticket(id int64) *ticketQ {
	if n := len(f.tickets); n > 0 {
		t := f.tickets[n-1]
		f.tickets = f.tickets[:n-1]
		*t = ticketQ{id: id, q: t.q[:0], timer: -1}
		return t
	}
	return &ticketQ{id: id, timer: -1}
}

func (f *freeLists) putTicket(t *ticketQ) {
	if len(f.tickets) < maxFree && len(t.q) == 0 {
		clear(t.q[:cap(t.q)])
		f.tickets = append(f.tickets, t)
	}
}

// readyQueue is a FIFO of tickets whose head is due.
type readyQueue struct {
	items []*ticketQ
	head  int
}

func (r *readyQueue) push(t *ticketQ) {
	t.ready = true
	r.items = append(r.items, t)
}

func (r *readyQueue) pop() *ticketQ {
	for r.head < len(r.items) {
		t := r.items[r.head]
		r.items[r.head] = nil
		r.head++
		if r.head > 1024 && r.head*2 > len(r.items) {
			r.items = append(r.items[:0], r.items[r.head:]...)
			r.head = 0
		}
		if t.ready { // false: removed while queued
			t.ready = false
			return t
		}
	}
	return nil
}

func (r *readyQueue) len() int { return len(r.items) - r.head }

func (r *readyQueue) reset() {
	for _, t := range r.items[r.head:] {
		if t != nil {
			t.ready = false
		}
	}
	r.items, r.head = r.items[:0], 0
}

// timerHeap orders tickets by their head's next attempt.
type timerHeap []*ticketQ

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].q[0].next.Before(h[j].q[0].next) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timer, h[j].timer = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*ticketQ)
	t.timer = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.timer = -1
	return t
}

func (h *timerHeap) add(t *ticketQ) { heap.Push(h, t) }

// popDue moves every ticket whose head is due at now to the ready queue.
func (h *timerHeap) popDue(now time.Time, r *readyQueue) {
	for h.Len() > 0 && !(*h)[0].q[0].next.After(now) {
		r.push(heap.Pop(h).(*ticketQ))
	}
}

// nextDue is the earliest head's time, or zero.
func (h timerHeap) nextDue() time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0].q[0].next
}

func (h *timerHeap) reset() {
	for _, t := range *h {
		t.timer = -1
	}
	*h = (*h)[:0]
}

// prevKey is the key just before k.
func prevKey(k outbox.Key) outbox.Key {
	if k.Index > 0 {
		return outbox.Key{Pos: k.Pos, Index: k.Index - 1}
	}
	if k.Pos == 0 {
		return k
	}
	return outbox.Key{Pos: k.Pos - 1, Index: ^uint32(0)}
}

// endKey is the key after every event of pos.
func endKey(pos change.Position) outbox.Key { return outbox.Key{Pos: pos, Index: ^uint32(0)} }

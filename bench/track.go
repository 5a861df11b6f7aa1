package bench

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// eventKey names an event as both sides can see it: the simulator knows
// which events its action causes on which ticket, the receiver reads the
// event name and ticket id from the body. Per ticket and event the order is
// the same on both sides (deskhook delivers each ticket's events in order),
// so the i-th commit of a key pairs with the i-th arrival.
type eventKey struct {
	ticket int64
	event  string
}

type stamp struct {
	key eventKey
	at  time.Time
	// thread is the thread row a reply's commit inserted (0 for other
	// actions, and for arrivals): a row no later action changes, so its
	// xmin dates the commit on the server's clock.
	thread int64
}

// tracker records, for one scenario, what the simulator committed and what
// the receiver accepted (2xx), per path.
type tracker struct {
	keepPath string // the measured endpoint's path
	stamps   bool   // keep each arrival on keepPath, for latencies

	mu       sync.Mutex
	commits  []stamp
	arrivals []stamp
	counts   map[string]*atomic.Int64 // 2xx arrivals per path
	first    []byte                   // the first accepted body on keepPath
	last     time.Time                // the last accepted arrival
	badBody  int                      // kept arrivals whose ticket could not be read
}

func newTracker(keepPath string, stamps bool, paths ...string) *tracker {
	t := &tracker{keepPath: keepPath, stamps: stamps, counts: map[string]*atomic.Int64{}}
	for _, p := range append(paths, keepPath) {
		t.counts[p] = new(atomic.Int64)
	}
	return t
}

// committed is the simulator's OnAction: it runs right after the action's
// COMMIT returned, with the wall-clock time taken then.
func (t *tracker) committed(a testenv.Action) {
	if len(a.Events) == 0 {
		return
	}
	var thread int64
	if a.Kind == testenv.ActAgentReply || a.Kind == testenv.ActClientReply {
		thread = a.ThreadID
	}
	t.mu.Lock()
	for _, ev := range a.Events {
		t.commits = append(t.commits, stamp{key: eventKey{a.TicketID, ev}, at: a.CommittedAt, thread: thread})
	}
	t.mu.Unlock()
}

// arrived is the receiver's OnRequest for this scenario.
func (t *tracker) arrived(r testenv.Request) {
	if c := r.Reply.StatusCode(); c < 200 || c > 299 {
		return
	}
	if n, ok := t.counts[r.Path]; ok {
		n.Add(1)
	}
	if r.Path != t.keepPath {
		return
	}
	var (
		ev string
		tk int64
		ok bool
	)
	if t.stamps {
		ev, tk, ok = formTicket(r.Body)
	}
	t.mu.Lock()
	if t.first == nil {
		t.first = bytes.Clone(r.Body)
	}
	t.last = r.Arrived
	switch {
	case !t.stamps:
	case ok:
		t.arrivals = append(t.arrivals, stamp{key: eventKey{tk, ev}, at: r.Arrived})
	default:
		t.badBody++
	}
	t.mu.Unlock()
}

func (t *tracker) count(path string) int {
	if n, ok := t.counts[path]; ok {
		return int(n.Load())
	}
	return 0
}

func (t *tracker) lastArrival() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// latencies pairs commits with arrivals and returns arrival − commit for
// the commits at or after from, skipping the tickets in skip, and the
// replies among them (for the server's clock).
func (t *tracker) latencies(from time.Time, skip map[int64]bool) (d []time.Duration, replies []replyArrival, unmatched int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	queue := make(map[eventKey][]time.Time, len(t.arrivals))
	for _, a := range t.arrivals {
		queue[a.key] = append(queue[a.key], a.at)
	}
	for _, c := range t.commits {
		q := queue[c.key]
		if len(q) == 0 {
			unmatched++
			continue
		}
		queue[c.key] = q[1:]
		if c.at.Before(from) || skip[c.key.ticket] {
			continue
		}
		d = append(d, q[0].Sub(c.at))
		if c.thread != 0 {
			replies = append(replies, replyArrival{thread: c.thread, committed: c.at, arrived: q[0]})
		}
	}
	return d, replies, unmatched
}

// replyArrival is a reply's event: its thread row, when the simulator saw
// COMMIT return and when the event arrived (see serverClock).
type replyArrival struct {
	thread             int64
	committed, arrived time.Time
}

// formTicket reads the event name and the ticket id from a faveo-form
// body without decoding all of it: the ticket is under ticket[id], under
// thread[ticket_id] for replies and comments, and under thread[id] for
// ticket_department_updated (Faveo's key).
func formTicket(body []byte) (event string, ticket int64, ok bool) {
	var ticketID, threadTicketID, threadID []byte
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte{'&'})
		k, v, _ := bytes.Cut(pair, []byte{'='})
		switch string(k) {
		case "event":
			for _, e := range mapping.AllEvents {
				if string(v) == e {
					event = e
				}
			}
		case "ticket%5Bid%5D", "ticket[id]":
			ticketID = v
		case "thread%5Bticket_id%5D", "thread[ticket_id]":
			threadTicketID = v
		case "thread%5Bid%5D", "thread[id]":
			threadID = v
		}
	}
	var id []byte
	switch event {
	case "":
		return "", 0, false
	case mapping.TicketReply, mapping.TicketCommented:
		id = threadTicketID
	case mapping.TicketDepartmentUpdated:
		id = threadID
	default:
		id = ticketID
	}
	n, err := strconv.ParseInt(string(id), 10, 64)
	if err != nil {
		return event, 0, false
	}
	return event, n, true
}

// deliveredBy is the share of the commits of tickets not in skip whose
// events had arrived by until.
func (t *tracker) deliveredBy(until time.Time, skip map[int64]bool) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var want, got int
	for _, c := range t.commits {
		if !skip[c.key.ticket] {
			want++
		}
	}
	for _, a := range t.arrivals {
		if !skip[a.key.ticket] && !a.at.After(until) {
			got++
		}
	}
	if want == 0 {
		return 0
	}
	return float64(got) / float64(want)
}

package outbox

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// Reading the delivery log: a query walks one index (log.go) backwards,
// newest first, in the key range its time bounds and cursor give; when an
// index is split by a field the query leaves open (the endpoint index by
// outcome) or asks several values of (outcomes), or a ticket's attempts
// are its events' (the event index, one range per event), several ranges
// are merged by time. The filters the index does not answer are checked on the
// entries. docs/delivery-log.md lists which filters use which index.

const (
	defaultLogLimit = 50
	maxLogLimit     = 1000
)

// maxLogScan bounds the index keys one query looks at: a page request is
// bounded whatever its filters; the rest comes with Next. (A variable for
// the tests.)
var maxLogScan = 20000

// logRange walks the keys of one index with a prefix backwards, from
// below hi down to lo (both suffixes: at · seq).
type logRange struct {
	c      *bolt.Cursor
	prefix []byte
	lo     []byte
	k      []byte // the current key; nil when done
	v      []byte
}

func newLogRange(b *bolt.Bucket, prefix, lo, hi []byte) *logRange {
	r := &logRange{c: b.Cursor(), prefix: prefix, lo: lo}
	seek := append(append([]byte(nil), prefix...), hi...)
	var k, v []byte
	if k, _ = r.c.Seek(seek); k == nil {
		k, v = r.c.Last()
	} else {
		k, v = r.c.Prev() // Seek lands at or after hi, which is excluded
	}
	r.set(k, v)
	return r
}

func (r *logRange) set(k, v []byte) {
	if k == nil || !bytes.HasPrefix(k, r.prefix) || len(k) != len(r.prefix)+logKeyLen ||
		bytes.Compare(k[len(r.prefix):], r.lo) < 0 {
		r.k, r.v = nil, nil
		return
	}
	r.k, r.v = k, v
}

func (r *logRange) suffix() []byte { return r.k[len(r.prefix):] }

func (r *logRange) next() { r.set(r.c.Prev()) }

// logPlan is the ranges a query walks and what they answer.
type logPlan struct {
	index   string
	b       *bolt.Bucket
	ranges  [][]byte // prefixes
	covered struct{ ticket, event, endpoint, typ, outcome bool }
}

func planLog(tx *bolt.Tx, lb logBuckets, q *LogQuery, key Key, outcomes []Outcome) (logPlan, error) {
	var p logPlan
	switch {
	case q.EventID != "":
		p.index, p.b = "event", lb.event
		p.ranges = [][]byte{key.bytes()}
		p.covered.event = true
	case q.TicketID != 0:
		// The ticket's events (eventidx/ticket), each one's attempts
		// (log/event), merged by time.
		p.index, p.b = "ticket", lb.event
		p.covered.ticket = true
		x, ok := eventIdxIn(tx)
		if !ok {
			return p, nil
		}
		prefix := binary.BigEndian.AppendUint64(nil, uint64(q.TicketID))
		c := x.ticket.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			p.ranges = append(p.ranges, bytes.Clone(k[8:]))
		}
	case q.Endpoint != "":
		p.index, p.b = "endpoint", lb.endpoint
		for _, o := range outcomes {
			p.ranges = append(p.ranges, endpointPrefix(q.Endpoint, o))
		}
		p.covered.endpoint, p.covered.outcome = true, true
	case q.EventType != "":
		p.index, p.b = "type", lb.typ
		p.ranges = [][]byte{append([]byte{byte(len(q.EventType))}, q.EventType...)}
		p.covered.typ = true
	case len(q.Outcomes) > 0:
		p.index, p.b = "outcome", lb.endpoint
		names, err := logEndpoints(lb.endpoint)
		if err != nil {
			return p, err
		}
		for _, name := range names {
			for _, o := range outcomes {
				p.ranges = append(p.ranges, endpointPrefix(string(name), o))
			}
		}
		p.covered.outcome = true
	default:
		p.index, p.b = "time", lb.entries
		p.ranges = [][]byte{nil}
	}
	return p, nil
}

func endpointPrefix(name string, o Outcome) []byte {
	b := make([]byte, 0, 2+len(name))
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return append(b, byte(o))
}

// logEndpoints lists the endpoint names in the endpoint index: one seek
// per name.
func logEndpoints(b *bolt.Bucket) ([][]byte, error) {
	var names [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil; {
		n := int(k[0])
		if len(k) < 1+n+1+logKeyLen {
			return nil, fmt.Errorf("log: endpoint index key %x: %w", k, errCorrupt)
		}
		name := bytes.Clone(k[1 : 1+n])
		names = append(names, name)
		next := append([]byte{byte(n)}, name...)
		k, _ = c.Seek(append(next, 0xff)) // past every outcome of name
	}
	return names, nil
}

// Log lists log entries matching q, newest first (docs/delivery-log.md).
func (o *Outbox) Log(q LogQuery) (LogPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLogLimit
	}
	limit = min(limit, maxLogLimit)
	hi := make([]byte, logKeyLen)
	binary.BigEndian.PutUint64(hi, math.MaxUint64)
	binary.BigEndian.PutUint64(hi[8:], math.MaxUint64)
	if !q.Until.IsZero() {
		hi = logKey(hi, q.Until, 0)
	}
	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor, logKeyLen)
		if err != nil {
			return LogPage{}, err
		}
		if bytes.Compare(c, hi) < 0 {
			hi = c
		}
	}
	lo := make([]byte, logKeyLen)
	if !q.Since.IsZero() {
		lo = logKey(lo, q.Since, 0)
	}
	outcomes := q.Outcomes
	if len(outcomes) == 0 {
		outcomes = []Outcome{Delivered, Retry, Dead}
	}
	var key Key
	page := LogPage{Entries: []LogEntry{}}
	if q.EventID != "" {
		var ok bool
		if key, ok = KeyOfID(q.EventID); !ok {
			page.Index = "event"
			return page, nil // no such event can be stored
		}
	}
	err := o.view(func(tx *bolt.Tx) error {
		lb, ok := logBucketsIn(tx)
		if !ok {
			page.Index = "time"
			return nil
		}
		p, err := planLog(tx, lb, &q, key, outcomes)
		if err != nil {
			return err
		}
		page.Index = p.index
		ranges := make(rangeHeap, 0, len(p.ranges))
		for _, prefix := range p.ranges {
			if r := newLogRange(p.b, prefix, lo, hi); r.k != nil {
				ranges = append(ranges, r)
			}
		}
		heap.Init(&ranges)
		want := func(v *logView) bool {
			switch {
			case !p.covered.endpoint && q.Endpoint != "" && string(v.endpoint) != q.Endpoint,
				!p.covered.ticket && q.TicketID != 0 && v.ticket != q.TicketID,
				!p.covered.event && q.EventID != "" && v.key != key,
				!p.covered.typ && q.EventType != "" && string(v.typ) != q.EventType:
				return false
			}
			if !p.covered.outcome && len(q.Outcomes) > 0 {
				for _, o := range q.Outcomes {
					if v.outcome == o {
						return true
					}
				}
				return false
			}
			return true
		}
		entries := lb.entries
		for {
			if len(ranges) == 0 {
				page.Next = ""
				return nil
			}
			r := ranges[0] // the newest of the ranges' current keys
			if page.Scanned >= maxLogScan {
				// Bounded: the next page goes on with this key.
				page.Next = cursorOf(incr(r.suffix()))
				return nil
			}
			k := bytes.Clone(r.suffix())
			v := r.v
			if p.b != entries {
				v = entries.Get(k)
			}
			page.Scanned++
			if r.next(); r.k == nil {
				heap.Pop(&ranges)
			} else {
				heap.Fix(&ranges, 0)
			}
			if v == nil {
				return fmt.Errorf("log: index %s has entry %x, which does not exist: %w", p.index, k, errCorrupt)
			}
			view, err := parseLogEntry(v)
			if err != nil {
				return fmt.Errorf("log: entry %x: %w", k, err)
			}
			if !want(&view) {
				continue
			}
			if len(page.Entries) == limit {
				// One more matches: there is a next page.
				page.Next = page.Entries[limit-1].Cursor
				return nil
			}
			page.Entries = append(page.Entries, view.entry(k))
		}
	})
	if err != nil {
		return LogPage{}, fmt.Errorf("outbox: reading the delivery log: %w", err)
	}
	return page, nil
}

// rangeHeap orders ranges by their current keys, the newest first.
type rangeHeap []*logRange

func (h rangeHeap) Len() int           { return len(h) }
func (h rangeHeap) Less(i, j int) bool { return bytes.Compare(h[i].suffix(), h[j].suffix()) > 0 }
func (h rangeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rangeHeap) Push(x any)        { *h = append(*h, x.(*logRange)) }
func (h *rangeHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// incr returns the key just after k (k + 1 as a big-endian number): a
// cursor at it continues with k itself.
func incr(k []byte) []byte {
	out := bytes.Clone(k)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	return out
}

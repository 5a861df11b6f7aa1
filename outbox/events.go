package outbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Reading stored events: one with where each endpoint stands and its
// attempts (Event), and listings by ticket and commit time (Events).

// Event returns the stored event id names, with its body, every endpoint
// holding it or in its attempts, and its attempts from the log, newest
// first. ErrNotFound: not stored (never, or pruned).
func (o *Outbox) Event(id string) (StoredEvent, error) {
	var ev StoredEvent
	key, ok := KeyOfID(id)
	if !ok {
		return ev, fmt.Errorf("outbox: event %q: %w", id, ErrNotFound)
	}
	err := o.view(func(tx *bolt.Tx) error {
		kb := key.bytes()
		raw := tx.Bucket(bucketEvents).Get(kb)
		if raw == nil {
			return fmt.Errorf("%w (never stored, or pruned with its log)", ErrNotFound)
		}
		e, err := decodeEvent(key, raw)
		if err != nil {
			return err
		}
		ev = StoredEvent{Key: key, ID: e.ID, Type: e.Type, TicketID: e.TicketID, DeptID: e.DeptID,
			SourceID: e.SourceID, CommitTime: e.CommitTime, Payload: e.Payload, Attempts: []LogEntry{}}
		byName := map[string]*EventDelivery{}
		eps := tx.Bucket(bucketEndpoints)
		err = eps.ForEachBucket(func(name []byte) error {
			root := eps.Bucket(name)
			d := EventDelivery{Endpoint: string(name)}
			if v := root.Bucket(bucketPending).Get(kb); v != nil {
				rec, err := parseDelivery(v)
				if err != nil {
					return fmt.Errorf("endpoint %q: pending %s: %w", name, key, err)
				}
				d.State, d.Attempts = "pending", rec.attempts
				if !rec.at.IsZero() {
					d.Next = rec.at.UTC()
				}
			} else if v := root.Bucket(bucketDead).Get(kb); v != nil {
				rec, err := parseDelivery(v)
				if err != nil {
					return fmt.Errorf("endpoint %q: dead letter %s: %w", name, key, err)
				}
				d.State, d.Attempts, d.DiedAt = "dead", rec.attempts, rec.at.UTC()
			} else {
				return nil
			}
			byName[d.Endpoint] = &d
			return nil
		})
		if err != nil {
			return err
		}
		if lb, ok := logBucketsIn(tx); ok {
			r := newLogRange(lb.event, kb, make([]byte, logKeyLen), bytes.Repeat([]byte{0xff}, logKeyLen))
			for ; r.k != nil && len(ev.Attempts) < MaxEventAttempts; r.next() {
				k := r.suffix()
				v := lb.entries.Get(k)
				if v == nil {
					return fmt.Errorf("log: index event has entry %x, which does not exist: %w", k, errCorrupt)
				}
				view, err := parseLogEntry(v)
				if err != nil {
					return fmt.Errorf("log: entry %x: %w", k, err)
				}
				a := view.entry(k)
				ev.Attempts = append(ev.Attempts, a)
				d := byName[a.Endpoint]
				if d == nil {
					d = &EventDelivery{Endpoint: a.Endpoint, State: "done"}
					if a.Outcome == Delivered {
						d.State = "delivered"
					}
					byName[a.Endpoint] = d
				}
				if d.LastAt.IsZero() {
					d.LastAt = a.At
				}
			}
		}
		for name, d := range byName {
			if root := eps.Bucket([]byte(name)); root != nil {
				if st, err := readState(root, name); err == nil {
					d.Orphaned = st.Orphaned()
				}
			}
			ev.Endpoints = append(ev.Endpoints, *d)
		}
		sort.Slice(ev.Endpoints, func(i, j int) bool { return ev.Endpoints[i].Endpoint < ev.Endpoints[j].Endpoint })
		return nil
	})
	if err != nil {
		return StoredEvent{}, fmt.Errorf("outbox: event %s: %w", id, err)
	}
	if ev.Endpoints == nil {
		ev.Endpoints = []EventDelivery{}
	}
	return ev, nil
}

// Events lists stored events, newest first: a ticket's (by the ticket
// index, in commit order) and/or those committed From ≤ t < To (by the
// commit-time index).
func (o *Outbox) Events(q EventQuery) (EventPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLogLimit
	}
	limit = min(limit, maxLogLimit)
	page := EventPage{Events: []EventSummary{}}
	var cursor []byte
	if q.Cursor != "" {
		var err error
		if cursor, err = parseCursor(q.Cursor, eventIdxKeyLen); err != nil {
			return page, err
		}
	}
	err := o.view(func(tx *bolt.Tx) error {
		x, ok := eventIdxIn(tx)
		if !ok {
			return nil
		}
		events := tx.Bucket(bucketEvents)
		var b *bolt.Bucket
		var lo, hi []byte
		if q.TicketID != 0 {
			b = x.ticket
			lo = binary.BigEndian.AppendUint64(nil, uint64(q.TicketID))
			hi = append(bytes.Clone(lo), bytes.Repeat([]byte{0xff}, keyLen)...)
			lo = append(lo, make([]byte, keyLen)...)
		} else {
			b = x.commit
			lo = binary.BigEndian.AppendUint64(nil, timeKey(q.From))
			lo = append(lo, make([]byte, keyLen)...)
			hi = append(bytes.Repeat([]byte{0xff}, 8), bytes.Repeat([]byte{0xff}, keyLen)...)
			if !q.To.IsZero() {
				hi = binary.BigEndian.AppendUint64(nil, timeKey(q.To))
				hi = append(hi, make([]byte, keyLen)...)
			}
		}
		if cursor != nil && bytes.Compare(cursor, hi) < 0 {
			hi = cursor
		}
		c := b.Cursor()
		k, _ := c.Seek(hi)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for scanned := 0; k != nil && bytes.Compare(k, lo) >= 0; k, _ = c.Prev() {
			if scanned >= maxLogScan {
				page.Next = cursorOf(incr(k))
				return nil
			}
			scanned++
			kb := k[8:]
			raw := events.Get(kb)
			if raw == nil {
				return fmt.Errorf("event index has %s, which is not stored: %w", keyFrom(kb), errCorrupt)
			}
			commit, typ, id, ok := eventHeader(raw)
			if !ok {
				return fmt.Errorf("event %s: %w", keyFrom(kb), errCorrupt)
			}
			if !inRange(commit, q.From, q.To) {
				continue
			}
			if len(page.Events) == limit {
				page.Next = cursorOf(incr(k))
				return nil
			}
			page.Events = append(page.Events, EventSummary{Key: keyFrom(kb), ID: id, Type: typ,
				TicketID: int64(binary.BigEndian.Uint64(raw[9:])), CommitTime: commit, Size: len(raw)})
		}
		return nil
	})
	if err != nil {
		return EventPage{}, fmt.Errorf("outbox: listing events: %w", err)
	}
	return page, nil
}

func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

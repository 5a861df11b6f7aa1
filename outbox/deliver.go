package outbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// Subscription is one endpoint as the sender sees it.
type Subscription struct {
	Name string
	// URL is where the endpoint delivers, without secrets: kept in its
	// state, so that status can say where an orphaned endpoint pointed.
	URL string
	// Wants says whether the endpoint gets an event; it runs in the
	// committer for every stored event, so it must be quick. nil: the
	// endpoint gets no new events but keeps its queue (a paused endpoint).
	Wants func(*mapping.Event) bool
	// Notify, when set, gets the endpoint's notices, from the committer
	// goroutine, in commit order: one after each commit that stores
	// transactions or changes the endpoint's state. It must not block
	// (hand the notice to a goroutine's inbox) and must not call the
	// Outbox.
	Notify func(Notice)
}

// Notice tells an endpoint's reader that a commit is durable: what it
// stored is in Pending from now on. The reader learns of new deliveries
// only this way, after their commit, so everything it sends is in the
// store: an event sent again after a crash, or after the source resent its
// transaction and the mapper mapped it again, goes out with the body it
// was first sent with.
type Notice struct {
	// To is the stored position after the commit: deliveries of events
	// with Pos ≤ To are in the store (up to To when Pending reads them).
	To change.Position
	// Reset says pending entries appeared behind any reader's cursor (dead
	// letters replayed): read the queue again from the start.
	Reset bool
	// State says the endpoint's persisted state changed (enabled,
	// disabled): read it with Endpoint.
	State bool
}

// Outcome is what a delivery attempt led to.
type Outcome uint8

const (
	// Delivered: the endpoint accepted the event; its entry is removed.
	Delivered Outcome = iota + 1
	// Retry: the attempt failed; try again at Result.Next.
	Retry
	// Dead: the attempt failed and no retry is left; the entry becomes a
	// dead letter with every attempt.
	Dead
)

func (oc Outcome) String() string {
	switch oc {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("outcome(%d)", uint8(oc))
}

// Result is the outcome of one delivery attempt.
type Result struct {
	Endpoint string
	Key      Key
	Outcome  Outcome
	Attempt  Attempt
	Next     time.Time // Retry: when the next attempt is due
}

// Record queues delivery results for the next group commit and returns at
// once. A result lost in a crash before that commit means the event is
// delivered again, with the same id and body.
func (o *Outbox) Record(results ...Result) {
	if len(results) == 0 || o.opts.ReadOnly {
		return
	}
	o.resMu.Lock()
	o.results = append(o.results, results...)
	o.resMu.Unlock()
	select {
	case o.resSignal <- struct{}{}:
	default:
	}
}

// Delivery is one pending entry with its event.
type Delivery struct {
	Key   Key
	Event *mapping.Event
	// Size is the payload's length in bytes, also when the page left the
	// payload out (Event.Payload nil: see PendingQuery.MaxBytes).
	Size     int
	Attempts int       // attempts made so far
	Next     time.Time // when the next attempt is due; zero: now
}

// PendingQuery selects pending entries of one endpoint.
type PendingQuery struct {
	After Key // start after this key; the zero Key starts at the beginning
	// Until is the last key to look at; the zero Key means up to the
	// stored position (entries of transactions not yet complete are never
	// returned).
	Until Key
	Max   int // most entries to return (default 1000)
	// Filter, when set, keeps only the entries it accepts; the others are
	// passed over without reading their events.
	Filter func(key Key, ticketID int64) bool
	// MaxBytes bounds the payload bytes the page holds (issue 12.7): a
	// payload that would pass it is left out (Event.Payload nil, Size
	// set), for the reader to read when it needs it. 0: no bound; < 0: no
	// payloads at all.
	MaxBytes int
}

// PendingPage is the answer to a PendingQuery.
type PendingPage struct {
	Deliveries []Delivery
	// Last is the last key looked at (never before After): the next query
	// starts after it. When End is set the query's range is exhausted and
	// Last is its end.
	Last Key
	End  bool
}

// Pending reads pending entries of an endpoint, in key order, with their
// events.
func (o *Outbox) Pending(endpoint string, q PendingQuery) (PendingPage, error) {
	if q.Max <= 0 {
		q.Max = 1000
	}
	maxScan := max(q.Max*64, 1<<16)
	var page PendingPage
	read := 0
	defer func() { o.touched(read) }()
	err := o.view(func(tx *bolt.Tx) error {
		limit := endKey(storedIn(tx))
		if q.Until != (Key{}) && q.Until.Less(limit) {
			limit = q.Until
		}
		root := tx.Bucket(bucketEndpoints).Bucket([]byte(endpoint))
		if root == nil {
			return fmt.Errorf("endpoint %q: %w", endpoint, ErrNotFound)
		}
		events := eventReader{c: tx.Bucket(bucketEvents).Cursor()}
		payloads := newPayloadReader(tx)
		c := root.Bucket(bucketPending).Cursor()
		page.Last = q.After
		k, v := c.Seek(q.After.bytes())
		if k != nil && keyFrom(k) == q.After {
			k, v = c.Next()
		}
		page.Deliveries = make([]Delivery, 0, min(q.Max, 256))
		budget := q.MaxBytes
		for scanned := 0; k != nil; k, v = c.Next() {
			key := keyFrom(k)
			if limit.Less(key) {
				break
			}
			if len(page.Deliveries) >= q.Max || scanned >= maxScan {
				return nil
			}
			scanned++
			page.Last = key
			rec, err := parseDelivery(v)
			if err != nil {
				return fmt.Errorf("endpoint %q: pending %s: %w", endpoint, key, err)
			}
			if q.Filter != nil && !q.Filter(key, rec.ticket) {
				continue
			}
			raw := events.get(k)
			if raw == nil {
				return fmt.Errorf("endpoint %q: pending %s: event missing: %w", endpoint, key, errCorrupt)
			}
			e, inline, size, err := decodeEventHeader(key, raw)
			if err != nil {
				return err
			}
			read += len(raw)
			switch {
			case q.MaxBytes != 0 && size > budget:
				// Left out: the reader reads it when it needs it.
			case inline != nil:
				e.Payload = append([]byte(nil), inline...)
				budget -= size
			default:
				if e.Payload, err = payloads.read(key, k, uint64(size)); err != nil {
					return err
				}
				budget -= size
			}
			page.Deliveries = append(page.Deliveries, Delivery{Key: key, Event: e, Size: size, Attempts: rec.attempts, Next: rec.at})
		}
		page.End, page.Last = true, limit
		if page.Last.Less(q.After) {
			page.Last = q.After
		}
		return nil
	})
	if err != nil {
		return PendingPage{}, fmt.Errorf("outbox: %w", err)
	}
	return page, nil
}

// eventReader looks events up in key order with one cursor: a queue's
// pending keys mostly follow each other in the events bucket (other
// endpoints' entries and delivered events are pruned), so stepping forward
// a little is cheaper than a search from the root for each, and a cursor
// reused allocates nothing.
type eventReader struct {
	c   *bolt.Cursor
	k   []byte // the cursor's key; nil before the first lookup or at the end
	v   []byte
	set bool
}

// get returns the event stored at k, or nil.
func (r *eventReader) get(k []byte) []byte {
	if r.set {
		for step := 0; r.k != nil && step < 4; step++ {
			switch cmp := bytes.Compare(r.k, k); {
			case cmp == 0:
				return r.v
			case cmp > 0:
				return nil
			}
			r.k, r.v = r.c.Next()
		}
	}
	r.k, r.v = r.c.Seek(k)
	r.set = true
	if r.k == nil || !bytes.Equal(r.k, k) {
		return nil
	}
	return r.v
}

func storedIn(tx *bolt.Tx) change.Position {
	if v := tx.Bucket(bucketMeta).Get(keyPosition); len(v) == 8 {
		return change.Position(binary.BigEndian.Uint64(v))
	}
	return 0
}

package outbox

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeadLetter is an event an endpoint never accepted, with every attempt.
type DeadLetter struct {
	Endpoint   string
	Key        Key
	ID         string // the event id, sent again as webhook-id on replay
	Type       string
	TicketID   int64
	CommitTime time.Time
	DiedAt     time.Time
	Attempts   []Attempt
	Payload    []byte // only from DeadLetter, not in listings
}

// DeadFilter selects dead letters; zero fields match everything.
type DeadFilter struct {
	Endpoint string
	ID       string
	TicketID int64
	// From and To bound the event's commit time: From ≤ t < To.
	From, To time.Time
	// DiedBy, when set, keeps only the letters that died at or before it:
	// a replay or drop confirmed on a page that counted the selection at
	// DiedBy leaves alone what died after the operator looked.
	DiedBy time.Time
	// Limit bounds a listing (0: no limit); replay and drop ignore it.
	Limit int
}

func (f DeadFilter) matchTime(t time.Time) bool {
	return (f.From.IsZero() || !t.Before(f.From)) && (f.To.IsZero() || t.Before(f.To))
}

// deadRef is one matching dead letter during a scan.
type deadRef struct {
	endpoint string
	key      []byte // a copy
	rec      deliveryRecord
	commit   time.Time
	typ, id  string
}

// eachDead calls fn for every dead letter matching f, by endpoint name and
// key. fn must not change the dead buckets; it returns false to stop.
func eachDead(tx *bolt.Tx, f DeadFilter, fn func(d deadRef) bool) error {
	events := tx.Bucket(bucketEvents)
	eps := tx.Bucket(bucketEndpoints)
	stop := false
	var scanErr error
	// An event id names its key: one seek per endpoint, not a walk over
	// every dead letter inside the committer's transaction.
	var only []byte
	if k, ok := KeyOfID(f.ID); ok {
		only = k.bytes()
	}
	err := eps.ForEachBucket(func(name []byte) error {
		if stop || (f.Endpoint != "" && f.Endpoint != string(name)) {
			return nil
		}
		c := eps.Bucket(name).Bucket(bucketDead).Cursor()
		first, next := c.First, c.Next
		if only != nil {
			first = func() ([]byte, []byte) { return c.Seek(only) }
			next = func() ([]byte, []byte) { return nil, nil }
		}
		for k, v := first(); k != nil; k, v = next() {
			if only != nil && !bytes.Equal(k, only) {
				break
			}
			rec, err := parseDelivery(v)
			if err != nil {
				scanErr = fmt.Errorf("endpoint %q: dead letter %s: %w", name, keyFrom(k), err)
				return scanErr
			}
			if (f.TicketID != 0 && rec.ticket != f.TicketID) || (!f.DiedBy.IsZero() && rec.at.After(f.DiedBy)) {
				continue
			}
			commit, typ, id, ok := eventHeader(events.Get(k))
			if !ok {
				return fmt.Errorf("endpoint %q: dead letter %s: event missing: %w", name, keyFrom(k), errCorrupt)
			}
			if (f.ID != "" && f.ID != id) || !f.matchTime(commit) {
				continue
			}
			d := deadRef{endpoint: string(name), key: append([]byte(nil), k...), rec: rec, commit: commit, typ: typ, id: id}
			if !fn(d) {
				stop = true
				return nil
			}
		}
		return nil
	})
	if scanErr != nil {
		return scanErr
	}
	return err
}

func (d deadRef) letter() (DeadLetter, error) {
	attempts, err := d.rec.attemptList()
	return DeadLetter{
		Endpoint:   d.endpoint,
		Key:        keyFrom(d.key),
		ID:         d.id,
		Type:       d.typ,
		TicketID:   d.rec.ticket,
		CommitTime: d.commit,
		DiedAt:     d.rec.at.UTC(),
		Attempts:   attempts,
	}, err
}

// DeadLetters lists the dead letters matching f, by endpoint and commit
// order, without payloads.
func (o *Outbox) DeadLetters(f DeadFilter) ([]DeadLetter, error) {
	var out []DeadLetter
	var derr error
	err := o.view(func(tx *bolt.Tx) error {
		return eachDead(tx, f, func(d deadRef) bool {
			l, err := d.letter()
			if err != nil {
				derr = err
				return false
			}
			out = append(out, l)
			return f.Limit <= 0 || len(out) < f.Limit
		})
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: listing dead letters: %w", err)
	}
	return out, nil
}

// DeadLetter returns one dead letter of an endpoint, by event id, with its
// payload.
func (o *Outbox) DeadLetter(endpoint, id string) (DeadLetter, error) {
	var l DeadLetter
	found := false
	var derr error
	err := o.view(func(tx *bolt.Tx) error {
		return eachDead(tx, DeadFilter{Endpoint: endpoint, ID: id}, func(d deadRef) bool {
			found = true
			l, derr = d.letter()
			if derr == nil {
				if e, err := decodeEvent(l.Key, tx.Bucket(bucketEvents).Get(d.key), newPayloadReader(tx)); err == nil {
					l.Payload = e.Payload
				} else {
					derr = err
				}
			}
			return false
		})
	})
	switch {
	case err != nil:
		return l, fmt.Errorf("outbox: dead letter %s of %q: %w", id, endpoint, err)
	case derr != nil:
		return l, fmt.Errorf("outbox: dead letter %s of %q: %w", id, endpoint, derr)
	case !found:
		return l, fmt.Errorf("outbox: dead letter %s of %q: %w", id, endpoint, ErrNotFound)
	}
	return l, nil
}

// Replay puts the dead letters matching f back in their endpoints' queues
// with no attempts: they are delivered again with their original ids. It
// returns how many.
func (o *Outbox) Replay(ctx context.Context, f DeadFilter) (int, error) {
	return o.rewriteDead(ctx, f, "replay", func(g *group, eb *endpointBuckets, d deadRef) error {
		if err := eb.pending.Put(d.key, d.rec.withAt(time.Time{}, false)); err != nil {
			return err
		}
		g.delta(d.endpoint).depth++
		g.notice(d.endpoint, noticeFlags{reset: true})
		return nil
	})
}

// Drop deletes the dead letters matching f and returns how many.
func (o *Outbox) Drop(ctx context.Context, f DeadFilter) (int, error) {
	return o.rewriteDead(ctx, f, "drop", func(g *group, _ *endpointBuckets, d deadRef) error {
		return g.release(d.key)
	})
}

func (o *Outbox) rewriteDead(ctx context.Context, f DeadFilter, what string, fn func(*group, *endpointBuckets, deadRef) error) (int, error) {
	n := 0
	err := o.do(ctx, func(g *group) error {
		n = 0
		var refs []deadRef
		if err := eachDead(g.tx, f, func(d deadRef) bool { refs = append(refs, d); return true }); err != nil {
			return err
		}
		for _, d := range refs {
			eb := g.endpoint(d.endpoint)
			if err := eb.dead.Delete(d.key); err != nil {
				return err
			}
			g.delta(d.endpoint).dead--
			if err := fn(g, eb, d); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: %s dead letters: %w", what, err)
	}
	if n > 0 {
		o.log.Info("dead letters "+map[string]string{"replay": "replayed", "drop": "dropped"}[what], "count", n, "endpoint", f.Endpoint, "ticket", f.TicketID, "id", f.ID)
	}
	return n, nil
}

package outbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// group is one write transaction of the committer and what it changes in
// memory once committed.
type group struct {
	o                          *Outbox
	tx                         *bolt.Tx
	meta, events, refs, epRoot *bolt.Bucket
	eb                         map[string]*endpointBuckets

	startStored, stored change.Position
	durable             change.Position // highest position completed or skipped
	maxKey              Key
	openTxn             change.Position
	spanning            bool // openTxn began in an earlier group
	partial             bool // a transaction completed here began in an earlier group

	subs     []Subscription
	targets  []int              // scratch: indexes of subs wanting an event
	txnFan   [][]*mapping.Event // per sub: events of the open transaction
	fan      [][]*mapping.Event // per sub: events of transactions completed here
	appended int                // events written
	deltas   map[string]*countDelta
	flags    map[string]noticeFlags
	status   map[string]*statusDelta
	newSubs  *[]Subscription
	dropped  []string
}

type endpointBuckets struct {
	root, pending, dead *bolt.Bucket
}

type countDelta struct{ depth, dead int64 }

type noticeFlags struct{ reset, state bool }

type statusDelta struct {
	success     time.Time
	errAt       time.Time
	err         string
	stateChange func(*EndpointState)
}

func (o *Outbox) newGroup(tx *bolt.Tx) *group {
	stored := o.Position()
	g := &group{
		o:           o,
		tx:          tx,
		meta:        tx.Bucket(bucketMeta),
		events:      tx.Bucket(bucketEvents),
		refs:        tx.Bucket(bucketRefs),
		epRoot:      tx.Bucket(bucketEndpoints),
		eb:          map[string]*endpointBuckets{},
		startStored: stored,
		stored:      stored,
		maxKey:      o.c.maxKey,
		openTxn:     o.c.openTxn,
		spanning:    o.c.openTxn != 0,
		subs:        o.c.subs,
		deltas:      map[string]*countDelta{},
		flags:       map[string]noticeFlags{},
		status:      map[string]*statusDelta{},
	}
	// Keys mostly arrive in increasing order: pack pages full instead of
	// splitting them in half.
	g.events.FillPercent, g.refs.FillPercent = 0.95, 0.95
	g.txnFan = make([][]*mapping.Event, len(g.subs))
	g.fan = make([][]*mapping.Event, len(g.subs))
	return g
}

func (g *group) endpoint(name string) *endpointBuckets {
	if eb, ok := g.eb[name]; ok {
		return eb
	}
	var eb *endpointBuckets
	if root := g.epRoot.Bucket([]byte(name)); root != nil {
		eb = &endpointBuckets{root: root, pending: root.Bucket(bucketPending), dead: root.Bucket(bucketDead)}
		eb.pending.FillPercent = 0.95
	}
	g.eb[name] = eb
	return eb
}

func (g *group) delta(name string) *countDelta {
	d := g.deltas[name]
	if d == nil {
		d = &countDelta{}
		g.deltas[name] = d
	}
	return d
}

func (g *group) statusOf(name string) *statusDelta {
	s := g.status[name]
	if s == nil {
		s = &statusDelta{}
		g.status[name] = s
	}
	return s
}

func (g *group) notice(name string, f noticeFlags) {
	old := g.flags[name]
	g.flags[name] = noticeFlags{reset: old.reset || f.reset, state: old.state || f.state}
}

// append writes one append request: the events, their fan-out, and the
// position when the transaction completes.
func (g *group) append(a *request) error {
	if a.pos <= g.stored {
		// Stored before (a source resending after a restart): report it
		// again so the source can acknowledge it.
		if a.last && a.pos > g.durable {
			g.durable = a.pos
		}
		return nil
	}
	if a.pos != g.openTxn {
		if g.openTxn != 0 {
			g.o.log.Warn("outbox: a transaction was never completed; its stored events stay deliverable",
				"position", g.openTxn.String(), "next", a.pos.String())
		}
		g.openTxn, g.spanning = a.pos, false
		for i := range g.txnFan {
			g.txnFan[i] = g.txnFan[i][:0]
		}
	}
	for i := range a.events {
		if err := g.appendEvent(&a.events[i]); err != nil {
			return err
		}
	}
	if a.last {
		g.stored, g.durable, g.openTxn = a.pos, a.pos, 0
		if g.spanning {
			g.partial = true
		}
		for i := range g.txnFan {
			g.fan[i] = append(g.fan[i], g.txnFan[i]...)
			g.txnFan[i] = g.txnFan[i][:0]
		}
	}
	return nil
}

func (g *group) appendEvent(e *mapping.Event) error {
	k := KeyOf(e)
	kb := k.bytes()
	g.targets = g.targets[:0]
	for i := range g.subs {
		if w := g.subs[i].Wants; w != nil && w(e) {
			g.targets = append(g.targets, i)
		}
	}
	if !g.maxKey.Less(k) {
		return g.reappendEvent(e, kb)
	}
	g.maxKey = k
	if len(g.targets) == 0 {
		return nil // nobody wants it: nothing to keep
	}
	rec, err := encodeEvent(e)
	if err != nil {
		return err
	}
	if err := g.events.Put(kb, rec); err != nil {
		return err
	}
	g.appended++
	for _, t := range g.targets {
		name := g.subs[t].Name
		eb := g.endpoint(name)
		if eb == nil {
			return fmt.Errorf("endpoint %q is subscribed but not registered", name)
		}
		if err := eb.pending.Put(kb, newDeliveryRecord(e.TicketID)); err != nil {
			return err
		}
		g.delta(name).depth++
		g.txnFan[t] = append(g.txnFan[t], e)
	}
	if len(g.targets) >= 2 {
		return g.refs.Put(kb, binary.BigEndian.AppendUint16(nil, uint16(len(g.targets))))
	}
	return nil
}

// reappendEvent handles an event whose key may already be stored: a chunk
// of an incomplete transaction sent again. Existing entries are kept (none
// was delivered: incomplete transactions are not deliverable), missing ones
// added, and the reference count recomputed.
func (g *group) reappendEvent(e *mapping.Event, kb []byte) error {
	existing := g.events.Get(kb) != nil
	if !existing && len(g.targets) == 0 {
		return nil
	}
	rec, err := encodeEvent(e)
	if err != nil {
		return err
	}
	if err := g.events.Put(kb, rec); err != nil {
		return err
	}
	g.appended++
	holders, t := 0, 0
	for i := range g.subs {
		name := g.subs[i].Name
		eb := g.endpoint(name)
		if eb == nil {
			continue
		}
		wanted := t < len(g.targets) && g.targets[t] == i
		if wanted {
			t++
		}
		pending := eb.pending.Get(kb) != nil
		if wanted && !pending && eb.dead.Get(kb) == nil {
			if err := eb.pending.Put(kb, newDeliveryRecord(e.TicketID)); err != nil {
				return err
			}
			g.delta(name).depth++
			pending = true
		}
		if pending {
			g.txnFan[i] = append(g.txnFan[i], e)
			holders++
		} else if eb.dead.Get(kb) != nil {
			holders++
		}
	}
	switch {
	case holders == 0:
		return g.events.Delete(kb)
	case holders == 1:
		return g.refs.Delete(kb)
	default:
		return g.refs.Put(kb, binary.BigEndian.AppendUint16(nil, uint16(holders)))
	}
}

// release drops one endpoint's claim on an event, deleting it with the last.
func (g *group) release(kb []byte) error {
	v := g.refs.Get(kb)
	if v == nil {
		return g.events.Delete(kb)
	}
	n := binary.BigEndian.Uint16(v)
	if n <= 2 {
		return g.refs.Delete(kb)
	}
	return g.refs.Put(kb, binary.BigEndian.AppendUint16(nil, n-1))
}

// record applies one delivery result. Results for entries that are gone
// (a removed endpoint, a result recorded twice) are ignored.
func (g *group) record(r *Result) {
	eb := g.endpoint(r.Endpoint)
	if eb == nil {
		return
	}
	kb := r.Key.bytes()
	v := eb.pending.Get(kb)
	if v == nil {
		return
	}
	st := g.statusOf(r.Endpoint)
	var err error
	switch r.Outcome {
	case Delivered:
		if err = eb.pending.Delete(kb); err == nil {
			err = g.release(kb)
		}
		g.delta(r.Endpoint).depth--
		if r.Attempt.At.After(st.success) {
			st.success = r.Attempt.At
		}
	case Retry, Dead:
		var rec deliveryRecord
		if rec, err = parseDelivery(v); err != nil {
			break
		}
		if r.Outcome == Retry {
			err = eb.pending.Put(kb, rec.withAttempt(r.Attempt, r.Next))
		} else {
			died := r.Attempt.At
			if err = eb.dead.Put(kb, rec.withAttempt(r.Attempt, died)); err == nil {
				err = eb.pending.Delete(kb)
			}
			d := g.delta(r.Endpoint)
			d.depth--
			d.dead++
		}
		if !r.Attempt.At.Before(st.errAt) {
			st.errAt, st.err = r.Attempt.At, attemptSummary(r.Attempt)
		}
	}
	if err != nil {
		g.o.log.Error("outbox: recording a delivery result failed", "endpoint", r.Endpoint, "key", r.Key.String(), "err", err)
	}
}

func attemptSummary(a Attempt) string {
	switch {
	case a.Status != 0 && a.Error != "":
		return fmt.Sprintf("HTTP %d: %s", a.Status, a.Error)
	case a.Status != 0:
		return fmt.Sprintf("HTTP %d", a.Status)
	}
	return a.Error
}

// finish writes the stored position and the endpoints' status changes.
func (g *group) finish() error {
	if g.stored != g.startStored {
		if err := g.meta.Put(keyPosition, binary.BigEndian.AppendUint64(nil, uint64(g.stored))); err != nil {
			return err
		}
	}
	for name, d := range g.status {
		eb := g.endpoint(name)
		if eb == nil {
			continue
		}
		st, err := readState(eb.root, name)
		if err != nil {
			return err
		}
		if d.success.After(st.LastSuccess) {
			st.LastSuccess = d.success.UTC()
		}
		if d.errAt.After(st.LastErrorAt) {
			st.LastErrorAt, st.LastError = d.errAt.UTC(), d.err
		}
		if d.stateChange != nil {
			d.stateChange(&st)
		}
		if err := writeState(eb.root, st); err != nil {
			return err
		}
	}
	return nil
}

func readState(root *bolt.Bucket, name string) (EndpointState, error) {
	st := EndpointState{Name: name}
	if v := root.Get(keyState); v != nil {
		if err := json.Unmarshal(v, &st); err != nil {
			return st, fmt.Errorf("endpoint %q: state: %w", name, err)
		}
	}
	return st, nil
}

func writeState(root *bolt.Bucket, st EndpointState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return root.Put(keyState, v)
}

package outbox

import (
	"bytes"
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
	payloads                   *bolt.Bucket
	eb                         map[string]*endpointBuckets
	layout                     byte // the file's layout version

	startStored, stored change.Position
	durable             change.Position // highest position completed or skipped
	maxKey              Key
	openTxn             change.Position
	resume              string // the resume token to store with stored ("": unchanged)

	subs     []Subscription
	targets  []int // scratch: indexes of subs wanting an event
	appended int   // events written
	kbuf     [keyLen]byte
	eventsC  *bolt.Cursor
	refsC    *bolt.Cursor
	deltas   map[string]*countDelta
	flags    map[string]noticeFlags
	status   map[string]*statusDelta
	newSubs  *[]Subscription
	dropped  []string
	// orphanEBs are the registered endpoints left out of subs (orphans).
	orphanEBs *[]*endpointBuckets
	// newStates are the endpoint states this group writes, for the
	// committer's cache once it is committed.
	newStates map[string]EndpointState
	// arena holds the group's small new values (delivery records,
	// reference counts): bbolt keeps values (not copies) until the
	// commit, so they share a few allocations.
	arena []byte

	// The delivery log and the events' indexes (log.go, eventidx.go).
	log               logState
	evIdx             eventIdx
	evIdxSet, evIdxOK bool
	allEBs            *[]*endpointBuckets // every registered endpoint, for holders
	// Large payloads (payloads.go): their cursor, and the bytes the group
	// reads or rewrites through the file's mapping (Outbox.touched).
	payloadsC *bolt.Cursor
	touched   int
}

// alloc returns n bytes of the group's arena.
func (g *group) alloc(n int) []byte {
	if cap(g.arena)-len(g.arena) < n {
		g.arena = make([]byte, 0, max(n, 4096))
	}
	m := len(g.arena)
	g.arena = append(g.arena, make([]byte, n)...)
	return g.arena[m:len(g.arena):len(g.arena)]
}

// newDeliveryRecord returns a new pending entry's record (no attempts
// yet), in the group's arena.
func (g *group) newDeliveryRecord(ticket int64) []byte {
	b := g.alloc(deliveryHeaderLen)
	putDeliveryHeader(b, ticket)
	return b
}

// refCount encodes a reference count in the group's arena.
func (g *group) refCount(n int) []byte {
	b := g.alloc(2)
	binary.BigEndian.PutUint16(b, uint16(n))
	return b
}

type endpointBuckets struct {
	root, pending, dead *bolt.Bucket
	pendingC            *bolt.Cursor // for results: one cursor per group, not one per lookup
}

func (eb *endpointBuckets) pendingCursor() *bolt.Cursor {
	if eb.pendingC == nil {
		eb.pendingC = eb.pending.Cursor()
	}
	return eb.pendingC
}

// seekExact positions c at k and returns its value, or nil when k is not
// there. A cursor reused this way allocates nothing, where each Get or
// Delete of a bucket makes a cursor of its own.
func seekExact(c *bolt.Cursor, k []byte) []byte {
	ck, v := c.Seek(k)
	if ck == nil || !bytes.Equal(ck, k) {
		return nil
	}
	return v
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
		payloads:    tx.Bucket(bucketPayloads),
		layout:      o.c.layout,
		refs:        tx.Bucket(bucketRefs),
		epRoot:      tx.Bucket(bucketEndpoints),
		eb:          map[string]*endpointBuckets{},
		startStored: stored,
		stored:      stored,
		maxKey:      o.c.maxKey,
		openTxn:     o.c.openTxn,
		subs:        o.c.subs,
		deltas:      map[string]*countDelta{},
		flags:       map[string]noticeFlags{},
		status:      map[string]*statusDelta{},
	}
	// Keys mostly arrive in increasing order: pack pages full instead of
	// splitting them in half.
	g.events.FillPercent, g.refs.FillPercent = 0.95, 0.95
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
		g.openTxn = a.pos
	}
	for i := range a.events {
		if err := g.appendEvent(&a.events[i]); err != nil {
			return err
		}
	}
	if a.last {
		g.stored, g.durable, g.openTxn = a.pos, a.pos, 0
		if a.resume != "" {
			g.resume = a.resume
		}
	}
	return nil
}

func (g *group) appendEvent(e *mapping.Event) error {
	k := KeyOf(e)
	kb := k.put(g.kbuf[:]) // bbolt copies keys it keeps
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
	if err := g.putEvent(kb, e); err != nil {
		return err
	}
	if err := g.indexEvent(kb, e); err != nil {
		return err
	}
	g.appended++
	for _, t := range g.targets {
		name := g.subs[t].Name
		eb := g.endpoint(name)
		if eb == nil {
			return fmt.Errorf("endpoint %q is subscribed but not registered", name)
		}
		if err := eb.pending.Put(kb, g.newDeliveryRecord(e.TicketID)); err != nil {
			return err
		}
		g.delta(name).depth++
	}
	if len(g.targets) >= 2 {
		return g.refs.Put(kb, g.refCount(len(g.targets)))
	}
	return nil
}

// reappendEvent handles an event whose key may already be stored: a chunk
// of an incomplete transaction sent again. Existing entries are kept (none
// was delivered: incomplete transactions are not deliverable), missing ones
// added, and the reference count recomputed.
func (g *group) reappendEvent(e *mapping.Event, kb []byte) error {
	old := g.events.Get(kb)
	if old == nil && len(g.targets) == 0 {
		return nil
	}
	if old != nil {
		if err := g.unindexEvent(kb, old); err != nil {
			return err
		}
	}
	if err := g.putEvent(kb, e); err != nil {
		return err
	}
	if err := g.indexEvent(kb, e); err != nil {
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
			if err := eb.pending.Put(kb, g.newDeliveryRecord(e.TicketID)); err != nil {
				return err
			}
			g.delta(name).depth++
			pending = true
		}
		if pending || eb.dead.Get(kb) != nil {
			holders++
		}
	}
	// Endpoints left out of the subscriptions (orphaned) may hold it too.
	orphans, err := g.orphans()
	if err != nil {
		return err
	}
	for _, eb := range orphans {
		if eb.pending.Get(kb) != nil || eb.dead.Get(kb) != nil {
			holders++
		}
	}
	switch {
	case holders == 0:
		if err := g.refs.Delete(kb); err != nil || g.hasLog(kb) {
			return err
		}
		c := g.events.Cursor()
		c.Seek(kb)
		return g.deleteEvent(c, kb, g.events.Get(kb))
	case holders == 1:
		return g.refs.Delete(kb)
	default:
		return g.refs.Put(kb, g.refCount(holders))
	}
}

// registeredExcept lists the registered endpoints whose names are not in
// names.
func (g *group) registeredExcept(names map[string]bool) ([]string, error) {
	var out []string
	err := g.epRoot.ForEachBucket(func(name []byte) error {
		if !names[string(name)] {
			out = append(out, string(name))
		}
		return nil
	})
	return out, err
}

// orphans are the registered endpoints not in the subscriptions, found
// once per group.
func (g *group) orphans() ([]*endpointBuckets, error) {
	if g.orphanEBs != nil {
		return *g.orphanEBs, nil
	}
	subscribed := make(map[string]bool, len(g.subs))
	for _, s := range g.subs {
		subscribed[s.Name] = true
	}
	names, err := g.registeredExcept(subscribed)
	if err != nil {
		return nil, err
	}
	ebs := []*endpointBuckets{}
	for _, name := range names {
		if eb := g.endpoint(name); eb != nil {
			ebs = append(ebs, eb)
		}
	}
	g.orphanEBs = &ebs
	return ebs, nil
}

// release drops one endpoint's claim on an event, deleting it with the
// last, unless the delivery log points at it: then the log's pruner
// deletes it with the log's last entry for it (logprune.go).
func (g *group) release(kb []byte) error {
	if g.refsC == nil {
		g.refsC, g.eventsC = g.refs.Cursor(), g.events.Cursor()
	}
	v := seekExact(g.refsC, kb)
	if v == nil {
		rec := seekExact(g.eventsC, kb)
		if rec == nil || g.hasLog(kb) {
			return nil
		}
		return g.deleteEvent(g.eventsC, kb, rec)
	}
	n := binary.BigEndian.Uint16(v)
	if n <= 2 {
		return g.refsC.Delete()
	}
	return g.refs.Put(kb, g.refCount(int(n)-1))
}

// record applies one delivery result. Results for entries that are gone
// (a removed endpoint, a result recorded twice) are ignored: deliveries
// are read from the store, so an entry is always written before its result.
func (g *group) record(r *Result) {
	eb := g.endpoint(r.Endpoint)
	if eb == nil {
		return
	}
	kb := r.Key.put(g.kbuf[:])
	pc := eb.pendingCursor()
	v := seekExact(pc, kb)
	if v == nil {
		return
	}
	rec, err := parseDelivery(v)
	if err == nil && g.o.logging() {
		// Before the result changes the queue: a delivered event's body
		// then stays for the log (release).
		err = g.logAttempt(r, kb, rec.ticket, rec.attempts+1)
	}
	if err != nil {
		g.o.log.Error("outbox: recording a delivery result failed", "endpoint", r.Endpoint, "key", r.Key.String(), "err", err)
		return
	}
	st := g.statusOf(r.Endpoint)
	switch r.Outcome {
	case Delivered:
		if err = pc.Delete(); err == nil {
			err = g.release(kb)
		}
		g.delta(r.Endpoint).depth--
		if r.Attempt.At.After(st.success) {
			st.success = r.Attempt.At
		}
	case Retry, Dead:
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

// finish writes the stored position, the log's size and the endpoints'
// status changes.
func (g *group) finish() error {
	if g.stored != g.startStored {
		if err := g.meta.Put(keyPosition, binary.BigEndian.AppendUint64(nil, uint64(g.stored))); err != nil {
			return err
		}
	}
	if g.resume != "" {
		if err := g.meta.Put(keyResume, []byte(g.resume)); err != nil {
			return err
		}
	}
	if d := g.log.delta; d != (logStat{}) {
		st := g.o.c.log
		st.count += d.count
		st.bytes += d.bytes
		if err := g.meta.Put(keyLogStat, st.encode()); err != nil {
			return err
		}
	}
	for name, d := range g.status {
		eb := g.endpoint(name)
		if eb == nil {
			continue
		}
		st, ok := g.newStates[name]
		if !ok {
			st, ok = g.o.c.states[name]
		}
		if !ok {
			var err error
			if st, err = readState(eb.root, name); err != nil {
				return err
			}
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
		if err := g.writeState(eb.root, st); err != nil {
			return err
		}
	}
	return nil
}

// writeState writes an endpoint's state, keeping it for the cache.
func (g *group) writeState(root *bolt.Bucket, st EndpointState) error {
	if err := writeState(root, st); err != nil {
		return err
	}
	if g.newStates == nil {
		g.newStates = map[string]EndpointState{}
	}
	g.newStates[st.Name] = st
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

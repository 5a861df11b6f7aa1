package outbox

import (
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// request is one item of the committer's queue: an append, an operator
// function or a barrier.
type request struct {
	pos    change.Position
	last   bool
	resume string // the source's resume token, stored with pos when last
	events []mapping.Event
	bytes  int64 // taken from the intake budget

	op      func(g *group) error
	barrier bool
	done    chan error
}

func (r *request) isAppend() bool { return r.op == nil && !r.barrier }

// committerState is what the committer goroutine alone reads and writes.
type committerState struct {
	subs    []Subscription
	layout  byte            // the file's layout version (layoutChunked once it holds a chunked payload)
	maxKey  Key             // the highest event key in the file
	openTxn change.Position // a transaction with chunks stored but not its last one
	lastLog time.Time       // of a write failure after intake stopped
	// states caches the endpoints' persisted states (the committer is
	// their only writer), so recording results does not decode them again
	// for every commit.
	states map[string]EndpointState
	log    logStat // the delivery log's count and size as committed
}

// run is the committer goroutine: it takes everything queued, writes it in
// one transaction, commits (two fdatasyncs in bbolt: pages, then meta) and
// then reports.
//
// An append is committed at once, with whatever else is queued by then:
// the endpoints hear of an event only after its commit (so that what they
// send is what is stored), so waiting for company would add to every
// event's latency. Company comes by itself under load: what queues during
// one commit goes into the next. Delivery results alone wait up to
// ResultDelay for more: nothing waits for them, and fewer commits cost less
// CPU and disk; the price is, after a crash, a few more redeliveries.
func (o *Outbox) run() {
	defer close(o.done)
	batch := make([]request, 0, o.opts.QueueLen)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case r := <-o.in:
			batch = append(batch, r)
		case <-o.resSignal:
			batch = o.lingerForResults(batch, timer)
		case <-o.quit:
			o.drain(batch)
			return
		}
		batch = o.gather(batch)
		o.process(batch)
		clear(batch) // drop the events: the batch's array is reused
	}
}

// lingerForResults lets results gather for up to ResultDelay. Anything
// queued (an append, an operator request) or Close ends the wait: it is
// committed at once, with the results.
func (o *Outbox) lingerForResults(batch []request, timer *time.Timer) []request {
	timer.Reset(o.opts.ResultDelay)
	select {
	case r := <-o.in:
		timer.Stop()
		batch = append(batch, r)
	case <-timer.C:
	case <-o.quit:
		timer.Stop()
	}
	return batch
}

func groupSize(batch []request) (n int, size int64) {
	for i := range batch {
		n += len(batch[i].events)
		size += batch[i].bytes
	}
	return n, size
}

// full says a group of n events and size bytes is as large as one commit
// may be: MaxGroupEvents events or half the intake budget's bytes, so one
// commit's dirty pages stay bounded.
func (o *Outbox) full(n int, size int64) bool {
	return n >= o.opts.MaxGroupEvents || size >= o.opts.MaxQueuedBytes/2
}

// gather adds what else is queued, up to a full group.
func (o *Outbox) gather(batch []request) []request {
	n, size := groupSize(batch)
	for !o.full(n, size) {
		select {
		case r := <-o.in:
			batch = append(batch, r)
			n += len(r.events)
			size += r.bytes
		default:
			return batch
		}
	}
	return batch
}

// drain commits everything still queued at Close.
func (o *Outbox) drain(batch []request) {
	for {
		batch = o.gather(batch[:0])
		if len(batch) == 0 {
			o.commitGroup(nil, o.takeResults())
			return
		}
		o.process(batch)
	}
}

// process commits runs of appends (with the pending results) as groups and
// runs each operator request in a transaction of its own, keeping order.
func (o *Outbox) process(batch []request) {
	if len(batch) == 0 {
		// Woken by results alone: commit them, or a quiet period would
		// leave the last deliveries pending (and resent after a restart).
		o.commitGroup(nil, o.takeResults())
		return
	}
	for i := 0; i < len(batch); {
		j := i
		for j < len(batch) && batch[j].isAppend() {
			j++
		}
		o.commitGroup(batch[i:j], o.takeResults())
		if j < len(batch) {
			o.runOp(&batch[j])
			j++
		}
		i = j
	}
}

// release returns the appends' bytes to the intake budget.
func (o *Outbox) release(appends []request) {
	for i := range appends {
		if appends[i].bytes > 0 {
			o.budget.Release(appends[i].bytes)
		}
	}
}

// takeResults takes the queued results; giveBack returns the slice for
// reuse once they are written (two slices take turns).
func (o *Outbox) takeResults() []Result {
	o.resMu.Lock()
	defer o.resMu.Unlock()
	rs := o.results
	o.results, o.resSpare = o.resSpare[:0], nil
	return rs
}

func (o *Outbox) giveBack(rs []Result) {
	if cap(rs) == 0 || cap(rs) > 1<<16 {
		return
	}
	clear(rs)
	o.resMu.Lock()
	o.resSpare = rs[:0]
	o.resMu.Unlock()
}

// slowCommit is when a commit's duration is worth a warning.
const slowCommit = time.Second

// commitGroup writes appends and results in one transaction.
func (o *Outbox) commitGroup(appends []request, results []Result) {
	defer o.release(appends)
	defer o.giveBack(results)
	if len(appends) == 0 && len(results) == 0 {
		return
	}
	if o.Err() != nil {
		appends = nil // never write past a failed group: its positions would be skipped
		if len(results) == 0 {
			return
		}
	}
	start := time.Now()
	tx, err := o.db.Begin(true)
	if err != nil {
		o.writeFailed(err, len(appends) > 0)
		return
	}
	defer o.recoverWrite(tx, nil)
	g := o.newGroup(tx)
	for i := range appends {
		if err = g.append(&appends[i]); err != nil {
			break
		}
	}
	if err == nil {
		for i := range results {
			g.record(&results[i])
		}
		err = g.finish()
	}
	if err != nil {
		_ = tx.Rollback()
		o.writeFailed(err, true)
		return
	}
	if err := tx.Commit(); err != nil {
		o.writeFailed(err, true)
		return
	}
	took := time.Since(start)
	o.touched(g.touched)
	o.m.committed(took, g.appended, len(results))
	if took > slowCommit {
		o.log.Warn("outbox commit was slow: is the disk overloaded?", "took", took, "events", g.appended, "results", len(results))
	}
	o.apply(g)
}

// runOp runs one operator request in its own transaction.
func (o *Outbox) runOp(r *request) {
	if r.barrier {
		r.done <- o.Err()
		return
	}
	tx, err := o.db.Begin(true)
	if err != nil {
		o.writeFailed(err, false)
		r.done <- err
		return
	}
	defer o.recoverWrite(tx, r.done)
	g := o.newGroup(tx)
	if err := r.op(g); err != nil {
		_ = tx.Rollback()
		r.done <- err
		return
	}
	if err := g.finish(); err != nil {
		_ = tx.Rollback()
		r.done <- err
		return
	}
	if err := tx.Commit(); err != nil {
		o.writeFailed(err, true)
		r.done <- err
		return
	}
	o.apply(g)
	r.done <- nil
}

// writeFailed stops intake on a failed write. Nothing of the failed
// transaction was stored; delivery results in it are lost, which only means
// redeliveries.
func (o *Outbox) writeFailed(err error, stop bool) {
	if o.Err() == nil && stop {
		o.stopIntake(err)
		return
	}
	if time.Since(o.c.lastLog) > 10*time.Second {
		o.c.lastLog = time.Now()
		o.log.Error("outbox write failed", "err", err)
	}
}

// apply makes a committed group's effects visible: position, counters,
// subscriptions, then notices and OnDurable.
func (o *Outbox) apply(g *group) {
	o.stored.Store(uint64(g.stored))
	o.c.maxKey, o.c.openTxn, o.c.layout = g.maxKey, g.openTxn, g.layout
	o.epMu.Lock()
	for _, name := range g.dropped {
		delete(o.eps, name)
	}
	for name, d := range g.deltas {
		c := o.eps[name]
		if c == nil {
			c = &endpointCounters{}
			o.eps[name] = c
		}
		c.depth.Add(d.depth)
		c.dead.Add(d.dead)
	}
	o.epMu.Unlock()
	if g.newSubs != nil {
		o.c.subs = *g.newSubs
		o.subsSet.Store(true)
	}
	if o.c.states == nil {
		o.c.states = map[string]EndpointState{}
	}
	for _, name := range g.dropped {
		delete(o.c.states, name)
	}
	for name, st := range g.newStates {
		o.c.states[name] = st
	}

	o.applyLog(g.log.delta)

	advanced := g.stored > g.startStored
	for _, s := range o.c.subs {
		if f := g.flags[s.Name]; s.Notify != nil && (advanced || f != (noticeFlags{})) {
			s.Notify(Notice{To: g.stored, Reset: f.reset, State: f.state})
		}
	}
	if g.durable > 0 && o.opts.OnDurable != nil {
		o.opts.OnDurable(g.durable)
	}
}

package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention of the delivery log: a pruner goroutine deletes expired
// entries (older than Retention, or the oldest while the log is larger
// than MaxBytes) in steps of pruneStep entries, each step an operator
// request of its own: a short transaction queued behind whatever the
// committer has waiting, so appends and results go on between steps and a
// large backlog of expired entries never becomes one huge commit. With an
// entry goes its index keys, and with the last entry of an event that no
// endpoint holds any more, the event.

// pruneStep bounds the entries one pruning transaction deletes.
const pruneStep = 512

// defaultPruneInterval is how often the pruner looks by default.
const defaultPruneInterval = time.Minute

func (o *Outbox) limits() LogLimits { return *o.logLimits.Load() }

// logging says whether results are recorded in the log.
func (o *Outbox) logging() bool { return o.limits().Retention > 0 }

// SetLogLimits changes the log's limits (a reload); the pruner applies
// them at once.
func (o *Outbox) SetLogLimits(l LogLimits) {
	o.logLimits.Store(&l)
	o.wakePruner()
}

func (o *Outbox) wakePruner() {
	select {
	case o.pruneWake <- struct{}{}:
	default:
	}
}

// applyLog makes a committed group's log changes visible, and wakes the
// pruner when the log outgrew its bound.
func (o *Outbox) applyLog(d logStat) {
	if d == (logStat{}) {
		return
	}
	o.c.log.count += d.count
	o.c.log.bytes += d.bytes
	o.logCount.Store(o.c.log.count)
	o.logBytes.Store(o.c.log.bytes)
	if max := o.limits().MaxBytes; max > 0 && o.c.log.bytes > max && d.bytes > 0 {
		o.wakePruner()
	}
}

func (o *Outbox) startPruner() {
	ctx, cancel := context.WithCancel(context.Background())
	o.pruneStop = cancel
	o.prunerDone = make(chan struct{})
	go o.runPruner(ctx)
}

func (o *Outbox) stopPruner() {
	if o.pruneStop != nil {
		o.pruneStop()
		<-o.prunerDone
	}
}

// runPruner is the pruner goroutine.
func (o *Outbox) runPruner(ctx context.Context) {
	defer close(o.prunerDone)
	timer := time.NewTimer(0) // a first look at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-o.pruneWake:
			timer.Stop()
		}
		o.prune(ctx)
		every := o.limits().PruneInterval
		if every <= 0 {
			every = defaultPruneInterval
		}
		timer.Reset(every)
	}
}

// prune deletes what is expired, step by step.
func (o *Outbox) prune(ctx context.Context) {
	lim := o.limits()
	if lim.Retention == 0 || o.logCount.Load() == 0 {
		return
	}
	total, start := 0, time.Now()
	for ctx.Err() == nil && o.Err() == nil {
		var n int
		var more bool
		err := o.do(ctx, func(g *group) error {
			var err error
			n, more, err = g.pruneLog(time.Now(), lim, pruneStep)
			return err
		})
		if err != nil {
			if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				o.log.Error("outbox: pruning the delivery log failed; it is tried again later", "err", err)
			}
			break
		}
		total += n
		o.m.pruned(n)
		if !more {
			break
		}
	}
	if total > 0 {
		o.log.Debug("delivery log pruned", "entries", total, "took", time.Since(start),
			"left", o.logCount.Load(), "bytes", o.logBytes.Load())
	}
}

// pruneLog deletes up to max expired entries, oldest first, and the events
// no longer needed; more says expired entries may be left.
func (g *group) pruneLog(now time.Time, lim LogLimits, max int) (n int, more bool, err error) {
	l, ok := g.logBuckets()
	if !ok {
		return 0, false, nil
	}
	var cutoff uint64 // entries with at < cutoff are expired
	switch {
	case lim.Retention < 0:
		cutoff = ^uint64(0)
	case lim.Retention > 0:
		cutoff = timeKey(now.Add(-lim.Retention))
	}
	size := g.o.c.log.bytes + l.delta.bytes
	type victim struct {
		k, v []byte
	}
	var victims []victim
	c := l.lb.entries.Cursor()
	for k, v := c.First(); k != nil && len(victims) < max; k, v = c.Next() {
		expired := binary.BigEndian.Uint64(k) < cutoff
		if !expired && (lim.MaxBytes <= 0 || size <= lim.MaxBytes) {
			break
		}
		view, err := parseLogEntry(v)
		if err != nil {
			return n, false, err
		}
		size -= int64(len(k)+len(v)) + view.indexSize()
		if last, evSize := g.lastOfEvent(&l.lb, view.key, k); last {
			size -= evSize // its event's body no longer counts (victims go oldest first)
		}
		victims = append(victims, victim{k: bytes.Clone(k), v: bytes.Clone(v)})
	}
	events := map[Key]bool{}
	for _, vc := range victims {
		view, _ := parseLogEntry(vc.v)
		if err := l.lb.entries.Delete(vc.k); err != nil {
			return n, false, err
		}
		removed := int64(len(vc.k) + len(vc.v))
		l.keys, l.scratch = view.indexKeys(l.keys[:0], l.scratch[:0], vc.k)
		for i, b := range l.lb.indexes() {
			if err := b.Delete(l.keys[i]); err != nil {
				return n, false, err
			}
			removed += int64(len(l.keys[i]))
		}
		l.delta.count--
		l.delta.bytes -= removed
		events[view.key] = true
		n++
	}
	for k := range events {
		kb := k.bytes()
		if hasPrefix(l.eventC, kb) {
			continue // the log still points at it
		}
		rec := g.events.Get(kb)
		if rec == nil {
			continue
		}
		l.delta.bytes -= int64(len(rec))
		held, err := g.held(kb)
		if err != nil {
			return n, false, err
		}
		if !held {
			if err := g.deleteEvent(kb); err != nil {
				return n, false, err
			}
		}
	}
	return n, len(victims) == max, nil
}

// lastOfEvent reports whether the entry k is the newest of its event's,
// and the event's size.
func (g *group) lastOfEvent(lb *logBuckets, key Key, k []byte) (bool, int64) {
	prefix := key.bytes()
	c := lb.event.Cursor()
	ik, _ := c.Seek(append(prefix, k...))
	if ik != nil {
		ik, _ = c.Next()
	}
	if ik != nil && bytes.HasPrefix(ik, prefix) {
		return false, 0
	}
	return true, int64(len(g.events.Get(prefix)))
}

// held reports whether an endpoint holds the event (pending or dead).
func (g *group) held(kb []byte) (bool, error) {
	if g.refs.Get(kb) != nil {
		return true, nil
	}
	ebs, err := g.allEndpoints()
	if err != nil {
		return false, err
	}
	for _, eb := range ebs {
		if eb.pending.Get(kb) != nil || eb.dead.Get(kb) != nil {
			return true, nil
		}
	}
	return false, nil
}

// holders counts the endpoints holding the event.
func (g *group) holders(kb []byte) (int, error) {
	if v := g.refs.Get(kb); v != nil {
		return refCount(v), nil
	}
	held, err := g.held(kb)
	if held {
		return 1, err
	}
	return 0, err
}

// allEndpoints are the registered endpoints, found once per group.
func (g *group) allEndpoints() ([]*endpointBuckets, error) {
	if g.allEBs != nil {
		return *g.allEBs, nil
	}
	names, err := g.registeredExcept(nil)
	if err != nil {
		return nil, err
	}
	ebs := make([]*endpointBuckets, 0, len(names))
	for _, name := range names {
		if eb := g.endpoint(name); eb != nil {
			ebs = append(ebs, eb)
		}
	}
	g.allEBs = &ebs
	return ebs, nil
}

// LogStats says how large the log is and the limits in force.
func (o *Outbox) LogStats() (LogStats, error) {
	lim := o.limits()
	st := LogStats{Retention: lim.Retention, MaxBytes: lim.MaxBytes}
	err := o.view(func(tx *bolt.Tx) error {
		st.Entries, st.Bytes = readLogStat(tx.Bucket(bucketMeta)).count, readLogStat(tx.Bucket(bucketMeta)).bytes
		if lb, ok := logBucketsIn(tx); ok {
			if k, _ := lb.entries.Cursor().First(); k != nil {
				st.Oldest = timeOfKey(k)
			}
		}
		return nil
	})
	return st, err
}

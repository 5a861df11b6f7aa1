package outbox

import (
	bolt "go.etcd.io/bbolt"
)

// Check's part for the delivery log and the events' indexes (log.go,
// eventidx.go).

// checkEventIdx checks that every event has its two index keys and that
// the indexes hold nothing else.
func (r *CheckReport) checkEventIdx(tx *bolt.Tx) {
	x, ok := eventIdxIn(tx)
	if !ok {
		r.problem("bucket %q or its ticket and commit buckets are missing", bucketEventIdx)
		return
	}
	events := tx.Bucket(bucketEvents)
	c := events.Cursor()
	var buf [2][eventIdxKeyLen]byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		t, cm, ok := eventIdxKeys(&buf, k, v)
		if !ok {
			continue // reported with the events
		}
		if x.ticket.Get(t) == nil || x.commit.Get(cm) == nil {
			r.problem("eventidx: event %s is missing from the ticket or commit-time index", keyOrHex(k))
		}
	}
	for _, b := range []struct {
		name string
		b    *bolt.Bucket
	}{{"ticket", x.ticket}, {"commit", x.commit}} {
		bc := b.b.Cursor()
		for k, _ := bc.First(); k != nil; k, _ = bc.Next() {
			if len(k) != eventIdxKeyLen {
				r.problem("eventidx/%s: a key of %d bytes, want %d", b.name, len(k), eventIdxKeyLen)
				continue
			}
			if events.Get(k[8:]) == nil {
				r.problem("eventidx/%s: event %s, which is not stored", b.name, keyFrom(k[8:]))
			}
		}
	}
}

// checkLog checks the delivery log: every entry decodes, has its index
// keys and its event; every index key has its entry; the size
// counter matches.
func (r *CheckReport) checkLog(tx *bolt.Tx) {
	lb, ok := logBucketsIn(tx)
	if !ok {
		r.problem("bucket %q or one of its buckets (entries, event, endpoint, type) is missing", bucketLog)
		return
	}
	events := tx.Bucket(bucketEvents)
	var got logStat
	counted := map[Key]bool{}
	var keys [][]byte
	var scratch []byte
	idx := lb.indexes()
	c := lb.entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		got.count++
		if len(k) != logKeyLen {
			r.problem("log: an entry key of %d bytes, want %d", len(k), logKeyLen)
			continue
		}
		view, err := parseLogEntry(v)
		if err != nil {
			r.problem("log: entry %x does not decode", k)
			continue
		}
		got.bytes += int64(len(k)+len(v)) + view.indexSize()
		keys, scratch = view.indexKeys(keys[:0], scratch[:0], k)
		for i, b := range idx {
			if b.Get(keys[i]) == nil {
				r.problem("log: entry %x is missing from the %s index", k, logIndexNames[i])
			}
		}
		if !counted[view.key] {
			counted[view.key] = true
			if rec := events.Get(view.key.bytes()); rec != nil {
				got.bytes += int64(len(rec))
			} else {
				r.problem("log: entry %x points at event %s, which is not stored", k, view.key)
			}
		}
	}
	r.LogEntries = int(got.count)
	for i, b := range idx {
		n := 0
		bc := b.Cursor()
		for k, _ := bc.First(); k != nil; k, _ = bc.Next() {
			n++
			if len(k) < logKeyLen || lb.entries.Get(k[len(k)-logKeyLen:]) == nil {
				r.problem("log: the %s index has key %x, whose entry does not exist",
					logIndexNames[i], k)
			}
		}
		if int64(n) != got.count && r.OK() {
			r.problem("log: the %s index has %d keys for %d entries", logIndexNames[i], n, got.count)
		}
	}
	if st := readLogStat(tx.Bucket(bucketMeta)); st != got {
		r.warn("log: its size counter says %d entries and %d bytes, it holds %d and %d "+
			"(retention by size is off by the difference; nothing is lost)", st.count, st.bytes, got.count, got.bytes)
	}
}

package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The delivery log (docs/delivery-log.md): one entry per delivery attempt,
// written by g.record in the commit of the result it describes, in bucket
// log/entries under the key at · seq (the attempt's start in Unix
// nanoseconds, a counter), with three indexes whose keys end with that
// same key and whose values are empty:
//
//	log/event     event key (12) · at · seq
//	log/endpoint  len(name) (1) · name · outcome (1) · at · seq
//	log/type      len(type) (1) · type · at · seq
//
// All three grow at their ends (a few prefixes, each in time order), so an
// attempt's entry costs few page writes. A ticket's attempts are its
// events' (eventidx/ticket, written once per event) in log/event, merged
// by time: an index keyed by ticket and time would land each attempt on a
// page of its own (BENCHMARKS.md, "Delivery log").
//
// meta "logstat" holds the entries' count and their size as retention
// counts it (logSize): entries, index keys, and the bodies of the events
// they point at, each event once (counted with its first entry,
// subtracted with its last).

var (
	bucketLog         = []byte("log")
	bucketLogEntries  = []byte("entries")
	bucketLogEvent    = []byte("event")
	bucketLogEndpoint = []byte("endpoint")
	bucketLogType     = []byte("type")
	keyLogStat        = []byte("logstat")
)

// logKeyLen is the length of an entry's key (at · seq), which ends every
// index key.
const logKeyLen = 16

// logBuckets are the log's buckets in one transaction.
type logBuckets struct {
	entries, event, endpoint, typ *bolt.Bucket
}

// logBucketsIn returns the log's buckets, or false in a store written by
// a deskhook without the log (opened read-only, not upgraded).
func logBucketsIn(tx *bolt.Tx) (logBuckets, bool) {
	root := tx.Bucket(bucketLog)
	if root == nil {
		return logBuckets{}, false
	}
	lb := logBuckets{
		entries:  root.Bucket(bucketLogEntries),
		event:    root.Bucket(bucketLogEvent),
		endpoint: root.Bucket(bucketLogEndpoint),
		typ:      root.Bucket(bucketLogType),
	}
	ok := lb.entries != nil && lb.event != nil && lb.endpoint != nil && lb.typ != nil
	return lb, ok
}

// createLogBuckets creates the log's buckets where they are missing.
func createLogBuckets(tx *bolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists(bucketLog)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketLogEntries, bucketLogEvent, bucketLogEndpoint, bucketLogType} {
		if _, err := root.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// logStat is the log's count and size.
type logStat struct{ count, bytes int64 }

func readLogStat(meta *bolt.Bucket) logStat {
	v := meta.Get(keyLogStat)
	if len(v) != 16 {
		return logStat{}
	}
	return logStat{count: int64(binary.BigEndian.Uint64(v)), bytes: int64(binary.BigEndian.Uint64(v[8:]))}
}

func (s logStat) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(s.count))
	binary.BigEndian.PutUint64(b[8:], uint64(s.bytes))
	return b
}

// logKey is an entry's key: at · seq.
func logKey(b []byte, at time.Time, seq uint64) []byte {
	binary.BigEndian.PutUint64(b, timeKey(at))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b[:logKeyLen]
}

// timeKey orders times as unsigned nanoseconds since 1970 (earlier: 0).
func timeKey(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

func timeOfKey(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

// cursorOf and parseCursor turn an entry's key into the cursor listings
// hand out, and back.
func cursorOf(k []byte) string { return hex.EncodeToString(k) }

func parseCursor(s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("outbox: cursor %q: %w", s, ErrBadCursor)
	}
	return b, nil
}

// Log entries: version | outcome | event key (12) | ticket | latency (ns) |
// status (2) | next attempt (unix ns, 0: none) | attempt number (2) |
// len(endpoint) (1) endpoint | len(type) (1) type | len(id) (1) id |
// len(error) (2) error | len(response) (2) response.
const logHeaderLen = 1 + 1 + keyLen + 8 + 8 + 2 + 8 + 2

// logView is a decoded entry whose strings still point into bbolt's
// memory: for filters; entry() copies it out.
type logView struct {
	outcome                         Outcome
	key                             Key
	ticket                          int64
	latency                         time.Duration
	status                          int
	next                            int64
	attempt                         int
	endpoint, typ, id, errText, rsp []byte
}

func encodeLogEntry(dst []byte, v *logView) []byte {
	b := dst[:0]
	b = append(b, recordVersion, byte(v.outcome))
	b = v.key.appendTo(b)
	b = binary.BigEndian.AppendUint64(b, uint64(v.ticket))
	b = binary.BigEndian.AppendUint64(b, uint64(v.latency))
	b = binary.BigEndian.AppendUint16(b, uint16(min(v.status, 0xffff)))
	b = binary.BigEndian.AppendUint64(b, uint64(v.next))
	b = binary.BigEndian.AppendUint16(b, uint16(min(v.attempt, 0xffff)))
	b = append(b, byte(len(v.endpoint)))
	b = append(b, v.endpoint...)
	b = append(b, byte(len(v.typ)))
	b = append(b, v.typ...)
	b = append(b, byte(len(v.id)))
	b = append(b, v.id...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.errText)))
	b = append(b, v.errText...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.rsp)))
	return append(b, v.rsp...)
}

func logEntrySize(v *logView) int {
	return logHeaderLen + 3 + len(v.endpoint) + len(v.typ) + len(v.id) + 4 + len(v.errText) + len(v.rsp)
}

func parseLogEntry(b []byte) (logView, error) {
	var v logView
	if len(b) < logHeaderLen || b[0] != recordVersion {
		return v, errCorrupt
	}
	v.outcome = Outcome(b[1])
	v.key = keyFrom(b[2 : 2+keyLen])
	p := b[2+keyLen:]
	v.ticket = int64(binary.BigEndian.Uint64(p))
	v.latency = time.Duration(binary.BigEndian.Uint64(p[8:]))
	v.status = int(binary.BigEndian.Uint16(p[16:]))
	v.next = int64(binary.BigEndian.Uint64(p[18:]))
	v.attempt = int(binary.BigEndian.Uint16(p[26:]))
	p = p[28:]
	var ok bool
	if v.endpoint, p, ok = cut8(p); !ok {
		return v, errCorrupt
	}
	if v.typ, p, ok = cut8(p); !ok {
		return v, errCorrupt
	}
	if v.id, p, ok = cut8(p); !ok {
		return v, errCorrupt
	}
	if v.errText, p, ok = cut16(p); !ok {
		return v, errCorrupt
	}
	if v.rsp, p, ok = cut16(p); !ok || len(p) != 0 {
		return v, errCorrupt
	}
	switch v.outcome {
	case Delivered, Retry, Dead:
	default:
		return v, errCorrupt
	}
	return v, nil
}

func cut8(p []byte) (field, rest []byte, ok bool) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return nil, nil, false
	}
	return p[1 : 1+int(p[0])], p[1+int(p[0]):], true
}

func cut16(p []byte) (field, rest []byte, ok bool) {
	if len(p) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(p))
	if len(p) < 2+n {
		return nil, nil, false
	}
	return p[2 : 2+n], p[2+n:], true
}

// entry copies v out as a LogEntry.
func (v *logView) entry(k []byte) LogEntry {
	e := LogEntry{
		Cursor:    cursorOf(k),
		At:        timeOfKey(k),
		Endpoint:  string(v.endpoint),
		EventID:   string(v.id),
		EventType: eventType(v.typ),
		TicketID:  v.ticket,
		Key:       v.key,
		Attempt:   v.attempt,
		Outcome:   v.outcome,
		Status:    v.status,
		Error:     string(v.errText),
		Duration:  v.latency,
		Response:  string(v.rsp),
	}
	if v.next != 0 {
		e.NextAt = time.Unix(0, v.next).UTC()
	}
	return e
}

// indexKeys appends the entry's three index keys (event, endpoint, type)
// to dst, in that order, each ending with k.
func (v *logView) indexKeys(dst [][]byte, buf []byte, k []byte) ([][]byte, []byte) {
	t := len(buf)
	buf = v.key.appendTo(buf)
	buf = append(buf, k...)
	e := len(buf)
	buf = append(buf, byte(len(v.endpoint)))
	buf = append(buf, v.endpoint...)
	buf = append(buf, byte(v.outcome))
	buf = append(buf, k...)
	y := len(buf)
	buf = append(buf, byte(len(v.typ)))
	buf = append(buf, v.typ...)
	buf = append(buf, k...)
	dst = append(dst, buf[t:e], buf[e:y], buf[y:])
	return dst, buf
}

// indexSize is the length of the entry's index keys.
func (v *logView) indexSize() int64 {
	return int64(len(logIndexNames)*logKeyLen + keyLen + 1 + len(v.endpoint) + 1 + 1 + len(v.typ))
}

func (k Key) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(k.Pos))
	return binary.BigEndian.AppendUint32(b, k.Index)
}

// indexes lists the index buckets in the order indexKeys writes them.
func (lb *logBuckets) indexes() [3]*bolt.Bucket {
	return [3]*bolt.Bucket{lb.event, lb.endpoint, lb.typ}
}

// logIndexNames name the indexes in that order.
var logIndexNames = [3]string{"event", "endpoint", "type"}

// hasPrefix reports whether bucket c's bucket holds a key starting with p.
func hasPrefix(c *bolt.Cursor, p []byte) bool {
	k, _ := c.Seek(p)
	return k != nil && bytes.HasPrefix(k, p)
}

// logState is what a group changes in the log.
type logState struct {
	lb      logBuckets
	ok      bool
	set     bool
	eventC  *bolt.Cursor // log/event, for "does the event have entries?"
	eventsC *bolt.Cursor // the events bucket, for the entries' id and type
	delta   logStat
	scratch []byte
	keys    [][]byte
}

func (g *group) logBuckets() (*logState, bool) {
	l := &g.log
	if !l.set {
		l.set = true
		l.lb, l.ok = logBucketsIn(g.tx)
		if l.ok {
			// Keys arrive in increasing order within each prefix: pack
			// pages full instead of splitting them in half.
			l.lb.entries.FillPercent, l.lb.endpoint.FillPercent, l.lb.typ.FillPercent = 0.95, 0.95, 0.95
			l.lb.event.FillPercent = 0.9
			l.eventC = l.lb.event.Cursor()
			l.eventsC = g.events.Cursor()
		}
	}
	return l, l.ok
}

// hasLog reports whether the log points at the event kb.
func (g *group) hasLog(kb []byte) bool {
	l, ok := g.logBuckets()
	return ok && hasPrefix(l.eventC, kb)
}

// logAttempt writes a result's log entry; attempt is its number.
func (g *group) logAttempt(r *Result, kb []byte, ticket int64, attempt int) error {
	l, ok := g.logBuckets()
	if !ok {
		return nil
	}
	ev := seekExact(l.eventsC, kb)
	if ev == nil {
		return fmt.Errorf("event %s: %w: its pending entry is there, the event is not", r.Key, errCorrupt)
	}
	typ, id, ok := eventNames(ev)
	if !ok {
		return fmt.Errorf("event %s: %w", r.Key, errCorrupt)
	}
	seq, err := l.lb.entries.NextSequence()
	if err != nil {
		return err
	}
	at := r.Attempt.At
	if at.IsZero() {
		at = time.Now()
	}
	v := logView{
		outcome:  r.Outcome,
		key:      r.Key,
		ticket:   ticket,
		latency:  r.Attempt.Latency,
		status:   r.Attempt.Status,
		attempt:  attempt,
		endpoint: []byte(r.Endpoint),
		typ:      typ,
		id:       id,
		errText:  []byte(clip(r.Attempt.Error, maxErrorLen)),
		rsp:      []byte(clip(r.Attempt.Response, MaxLogResponse)),
	}
	if r.Outcome == Retry && !r.Next.IsZero() {
		v.next = r.Next.UnixNano()
	}
	var kbuf [logKeyLen]byte
	k := logKey(kbuf[:], at, seq)
	first := !hasPrefix(l.eventC, kb)
	val := encodeLogEntry(g.alloc(logEntrySize(&v)), &v)
	if err := l.lb.entries.Put(k, val); err != nil {
		return err
	}
	size := int64(len(k) + len(val))
	l.keys, l.scratch = v.indexKeys(l.keys[:0], l.scratch[:0], k)
	for i, b := range l.lb.indexes() {
		if err := b.Put(l.keys[i], nil); err != nil {
			return err
		}
		size += int64(len(l.keys[i]))
	}
	if first {
		size += int64(len(ev))
	}
	l.delta.count++
	l.delta.bytes += size
	return nil
}

// eventNames reads an event record's type and id, without copying.
func eventNames(b []byte) (typ, id []byte, ok bool) {
	if len(b) < 35 || b[0] != recordVersion {
		return nil, nil, false
	}
	rest := b[33:]
	if typ, rest, ok = cut8(rest); !ok {
		return nil, nil, false
	}
	id, _, ok = cut8(rest)
	return typ, id, ok
}

package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
)

// CheckReport is what Check found in a store file.
type CheckReport struct {
	Path      string          `json:"path"`
	Size      int64           `json:"size_bytes"`
	PageSize  int             `json:"page_size,omitempty"`
	Pages     int             `json:"pages,omitempty"` // below the high-water mark
	FreePages int             `json:"free_pages"`
	Txid      uint64          `json:"txid,omitempty"`
	Layout    int             `json:"layout_version,omitempty"`
	Position  change.Position `json:"stored_position"`
	Events    int             `json:"events"`
	Endpoints []CheckEndpoint `json:"endpoints"`
	// Problems are damage: the store cannot be trusted. Warnings are
	// oddities that lose nothing.
	Problems []string      `json:"problems"`
	Warnings []string      `json:"warnings"`
	Took     time.Duration `json:"took_ns"`
}

// CheckEndpoint is one endpoint's queue as Check counted it.
type CheckEndpoint struct {
	Name        string `json:"name"`
	Pending     int    `json:"pending"`
	DeadLetters int    `json:"dead_letters"`
}

// OK says whether Check found no damage.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) problem(format string, args ...any) {
	switch n := len(r.Problems); {
	case n < maxProblems:
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	case n == maxProblems:
		r.Problems = append(r.Problems, "(more problems not listed)")
	}
}

func (r *CheckReport) warn(format string, args ...any) {
	if len(r.Warnings) < maxProblems {
		r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
	}
}

// Check reads the whole store file at path, changing nothing: its
// structure as bbolt lays it out (filecheck.go), then bbolt's own
// consistency check (Tx.Check), then deskhook's invariants: the layout
// version, every record decodes, every pending entry and dead letter has
// its event, the reference counts match the entries holding each event,
// every endpoint's state decodes. It fails with an error wrapping ErrInUse
// while a daemon holds the file (check a copy from `deskhook store backup`
// instead); damage is in the report, not an error.
func Check(path string, lockTimeout time.Duration) (*CheckReport, error) {
	start := time.Now()
	r := &CheckReport{Path: path, Endpoints: []CheckEndpoint{}, Problems: []string{}, Warnings: []string{}}
	defer func() { r.Took = time.Since(start) }()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("outbox: store %s: %w", path, err)
	}
	defer f.Close()
	// A shared lock, like bbolt's read-only one: a daemon cannot start
	// writing while the file is read.
	if locked, err := lockFile(f, false, lockTimeout); err != nil || !locked {
		if err != nil {
			return nil, fmt.Errorf("outbox: locking store %s: %w", path, err)
		}
		return nil, inUse(path, Options{LockTimeout: lockTimeout})
	}
	l, err := walkFile(f)
	if err != nil {
		return nil, fmt.Errorf("outbox: reading store %s: %w", path, err)
	}
	r.Size, r.PageSize, r.Pages, r.FreePages, r.Txid = l.size, l.pageSize, int(l.meta.pgid), l.free(), l.meta.txid
	r.Warnings = append(r.Warnings, l.warnings()...)
	if err := l.damage(path); err != nil {
		var de *DamageError
		errors.As(err, &de)
		if de.Foreign {
			r.problem("not a deskhook store: %s", de.What)
		}
		for _, p := range l.fatal() {
			r.problem("%s", p)
		}
		return r, nil // the rest reads through bbolt, which needs the structure intact
	}
	if len(l.topBuckets) == 0 {
		r.problem("the file is an empty bbolt file: no deskhook store was ever written to it")
		return r, nil
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		r.problem("bbolt cannot open it: %v", err)
		return r, nil
	}
	defer db.Close()
	err = protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				r.problem("bbolt: %v", err)
			}
			return nil
		})
	})
	if err != nil {
		r.problem("bbolt's check failed: %v", err)
	}
	if !r.OK() {
		return r, nil
	}
	if err := protect(func() error { return db.View(r.checkRecords) }); err != nil {
		r.problem("reading the records failed: %v", err)
	}
	return r, nil
}

// checkRecords checks deskhook's invariants in one read transaction.
func (r *CheckReport) checkRecords(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	events, refs, eps := tx.Bucket(bucketEvents), tx.Bucket(bucketRefs), tx.Bucket(bucketEndpoints)
	for _, b := range []struct {
		name []byte
		b    *bolt.Bucket
	}{{bucketMeta, meta}, {bucketEvents, events}, {bucketRefs, refs}, {bucketEndpoints, eps}} {
		if b.b == nil {
			r.problem("bucket %q is missing", b.name)
		}
	}
	if !r.OK() {
		return nil
	}
	switch v := meta.Get(keyVersion); {
	case len(v) != 1:
		r.problem("meta: layout version is %d bytes, want 1", len(v))
	case v[0] > layoutChunked:
		r.Layout = int(v[0])
		r.problem("layout version %d: written by a newer deskhook (this one reads versions %d and %d)", v[0], layoutVersion, layoutChunked)
	case v[0] != layoutVersion && v[0] != layoutChunked:
		r.Layout = int(v[0])
		r.problem("layout version %d: this deskhook reads versions %d and %d", v[0], layoutVersion, layoutChunked)
	default:
		r.Layout = int(v[0])
	}
	switch v := meta.Get(keyPosition); len(v) {
	case 0:
	case 8:
		r.Position = change.Position(binary.BigEndian.Uint64(v))
	default:
		r.problem("meta: the stored position is %d bytes, want 8", len(v))
	}

	// Every endpoint's entries: records decode and their events exist.
	type holder struct{ pending, dead *follower }
	var holders []holder
	err := eps.ForEach(func(name, v []byte) error {
		if v != nil {
			r.problem("endpoints: %q is a value, not an endpoint's bucket", name)
			return nil
		}
		root := eps.Bucket(name)
		ce := CheckEndpoint{Name: string(name)}
		if st := root.Get(keyState); st == nil {
			r.problem("endpoint %q: no state", name)
		} else {
			var s EndpointState
			if err := json.Unmarshal(st, &s); err != nil {
				r.problem("endpoint %q: its state does not decode: %v", name, err)
			} else if s.Name != "" && s.Name != string(name) {
				r.problem("endpoint %q: its state names endpoint %q", name, s.Name)
			}
		}
		pending, dead := root.Bucket(bucketPending), root.Bucket(bucketDead)
		if pending == nil || dead == nil {
			r.problem("endpoint %q: its pending or dead bucket is missing", name)
			r.Endpoints = append(r.Endpoints, ce)
			return nil
		}
		ce.Pending = r.checkEntries(fmt.Sprintf("endpoint %q: pending", name), pending, events, dead)
		ce.DeadLetters = r.checkEntries(fmt.Sprintf("endpoint %q: dead letter", name), dead, events, nil)
		r.Endpoints = append(r.Endpoints, ce)
		holders = append(holders, holder{pending: newFollower(pending), dead: newFollower(dead)})
		return nil
	})
	if err != nil {
		return err
	}

	// Every event: it decodes, and its reference count (kept only from two
	// holders on) matches the endpoints holding it.
	refsF := newFollower(refs)
	payloads := newPayloadReader(tx)
	c := events.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r.Events++
		if len(k) != keyLen {
			r.problem("events: a key of %d bytes, want %d", len(k), keyLen)
			continue
		}
		key := keyFrom(k)
		if e, err := decodeEvent(key, v, payloads); err != nil {
			r.problem("event %s does not decode", key)
		} else if e.ID == "" {
			r.problem("event %s has no id", key)
		}
		n := 0
		for _, h := range holders {
			if h.pending.has(k) || h.dead.has(k) {
				n++
			}
		}
		ref := refsF.value(k)
		switch {
		case ref != nil && len(ref) != 2:
			r.problem("refs: the count of event %s is %d bytes, want 2", key, len(ref))
		case n >= 2 && (ref == nil || int(binary.BigEndian.Uint16(ref)) != n):
			r.problem("refs: event %s is held by %d endpoints, its count says %d", key, n, refCount(ref))
		case n < 2 && ref != nil:
			r.problem("refs: event %s is held by %d endpoint(s), its count says %d", key, n, refCount(ref))
		case n == 0:
			r.warn("event %s is kept, but no endpoint needs it (wasted space, nothing lost)", key)
		}
	}
	rc := refs.Cursor()
	evF := newFollower(events)
	for k, _ := rc.First(); k != nil; k, _ = rc.Next() {
		if !evF.has(k) {
			r.problem("refs: a count for event %s, which does not exist", keyOrHex(k))
		}
	}
	// Chunked payloads: every chunk there, none left over.
	payloadProblems(tx, func(p string) { r.problem("%s", p) })
	return nil
}

// checkEntries checks the delivery records of one pending or dead bucket
// and returns how many there are. other, when set, must not hold the same
// keys (an entry is pending or dead, not both).
func (r *CheckReport) checkEntries(what string, b, events, other *bolt.Bucket) int {
	n := 0
	evF := newFollower(events)
	var otherF *follower
	if other != nil {
		otherF = newFollower(other)
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		n++
		if len(k) != keyLen {
			r.problem("%s: a key of %d bytes, want %d", what, len(k), keyLen)
			continue
		}
		key := keyFrom(k)
		rec, err := parseDelivery(v)
		if err == nil {
			_, err = rec.attemptList()
		}
		if err != nil {
			r.problem("%s %s: its record does not decode", what, key)
		}
		if !evF.has(k) {
			r.problem("%s %s: its event is missing", what, key)
		}
		if otherF != nil && otherF.has(k) {
			r.problem("%s %s: it is also a dead letter", what, key)
		}
	}
	return n
}

func refCount(v []byte) int {
	if len(v) != 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

func keyOrHex(k []byte) string {
	if len(k) == keyLen {
		return keyFrom(k).String()
	}
	return fmt.Sprintf("%x", k)
}

// follower answers "is k in the bucket?" for keys asked in increasing
// order, moving one cursor forward (a few steps, else a seek): a merge of
// sorted buckets.
type follower struct {
	c       *bolt.Cursor
	k, v    []byte
	started bool
}

func newFollower(b *bolt.Bucket) *follower { return &follower{c: b.Cursor()} }

func (f *follower) has(k []byte) bool {
	for step := 0; f.started && f.k != nil && bytes.Compare(f.k, k) < 0; step++ {
		if step == 4 {
			f.started = false
			break
		}
		f.k, f.v = f.c.Next()
	}
	if !f.started {
		f.k, f.v = f.c.Seek(k)
		f.started = true
	}
	return f.k != nil && bytes.Equal(f.k, k)
}

// value returns k's value, or nil.
func (f *follower) value(k []byte) []byte {
	if f.has(k) {
		return f.v
	}
	return nil
}

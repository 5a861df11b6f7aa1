package outbox

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/mapping"
)

// Large payloads are stored in chunks, in a bucket of their own, rather
// than as one value in the events bucket. bbolt never splits a leaf of four
// values or fewer, and rewrites a whole leaf whenever one of its values is
// added or deleted: with one value per event, every event stored next to
// three 10 MB ones would copy 30 MB into new pages (and read them through
// the file's mapping), and every delivery would do the same again. In
// chunks of payloadChunk bytes, a leaf holds at most a few hundred
// kilobytes whatever the payloads, so a commit's memory and writes follow
// what it changes.
//
// Layout: payloads: event key | chunk number (4 bytes BE) → chunk. The
// event's record (recordChunked) holds the payload's length instead of the
// payload. Payloads of payloadChunk bytes or less stay in the record.

var bucketPayloads = []byte("payloads")

// payloadChunk is the size of a stored chunk.
const payloadChunk = 64 << 10

// layoutChunked is the layout version of a file that holds chunked
// payloads: older deskhook versions refuse to open it (instead of reading
// such events as corrupt). A file is moved to it by its first large event.
const layoutChunked = 2

const chunkKeyLen = keyLen + 4

func chunkKey(dst []byte, kb []byte, n uint32) []byte {
	dst = append(dst[:0], kb...)
	return binary.BigEndian.AppendUint32(dst, n)
}

// chunked reports whether an event's payload goes to the payloads bucket.
func chunked(e *mapping.Event) bool { return len(e.Payload) > payloadChunk }

// putEvent writes an event's record and, for a large payload, its chunks.
// bbolt keeps the values given (slices of e.Payload, not copies) until the
// commit. A record stored before at kb (a chunk of an incomplete
// transaction sent again) is replaced whole.
func (g *group) putEvent(kb []byte, e *mapping.Event) error {
	if old := g.events.Get(kb); old != nil && old[0] == recordChunked {
		if err := g.deleteChunks(kb); err != nil {
			return err
		}
	}
	rec, err := encodeEvent(e)
	if err != nil {
		return err
	}
	if err := g.events.Put(kb, rec); err != nil {
		return err
	}
	g.touched += len(rec)
	if !chunked(e) {
		return nil
	}
	// Finding the leaf for each chunk reads the keys of the chunks stored
	// before it, and with them the pages around (fault-around).
	g.touched += len(e.Payload)
	if g.layout < layoutChunked {
		if err := g.meta.Put(keyVersion, []byte{layoutChunked}); err != nil {
			return err
		}
		g.layout = layoutChunked
	}
	var ckb [chunkKeyLen]byte // bbolt copies keys it keeps
	for n, off := uint32(0), 0; off < len(e.Payload); n, off = n+1, off+payloadChunk {
		ck := chunkKey(ckb[:0], kb, n)
		if err := g.payloads.Put(ck, e.Payload[off:min(off+payloadChunk, len(e.Payload))]); err != nil {
			return err
		}
	}
	return nil
}

// deleteEvent deletes the event at the events cursor c (positioned at kb)
// and its chunks.
func (g *group) deleteEvent(c *bolt.Cursor, kb, rec []byte) error {
	isChunked := len(rec) > 0 && rec[0] == recordChunked
	g.touched += len(rec)
	if isChunked && len(rec) >= 8 {
		// Seeking each chunk to delete it reads its key, and the pages
		// around it with it (fault-around): about all of the payload.
		g.touched += int(min(binary.BigEndian.Uint64(rec[len(rec)-8:]), maxPayload))
	}
	if err := c.Delete(); err != nil {
		return err
	}
	if isChunked {
		return g.deleteChunks(kb)
	}
	return nil
}

// deleteChunks deletes every chunk of the event at kb.
func (g *group) deleteChunks(kb []byte) error {
	if g.payloadsC == nil {
		g.payloadsC = g.payloads.Cursor()
	}
	c := g.payloadsC
	// A cursor's Next after its Delete can skip a key: seek again each time.
	for k, _ := c.Seek(kb); k != nil && bytes.HasPrefix(k, kb); k, _ = c.Seek(kb) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// payloadReader reads chunked payloads in a read transaction.
type payloadReader struct {
	tx *bolt.Tx
	c  *bolt.Cursor
	// mapped is the file's mapping, for dropPages.
	mapped fileMap
}

func newPayloadReader(tx *bolt.Tx) *payloadReader {
	r := &payloadReader{tx: tx}
	if b := tx.Bucket(bucketPayloads); b != nil {
		r.c = b.Cursor()
	}
	r.mapped = mappingOf(tx)
	return r
}

// read copies the payload of n bytes stored in chunks at kb. The chunks'
// pages are then dropped from the process (dropPages): a backlog of large
// events read through the mapping would otherwise stay resident, counted
// in the process's memory, until the kernel needs the room.
func (r *payloadReader) read(k Key, kb []byte, n uint64) ([]byte, error) {
	if r.c == nil {
		return nil, fmt.Errorf("event %s: chunked payload of %d bytes: %w", k, n, errCorrupt)
	}
	out := make([]byte, 0, n)
	next := uint32(0)
	var span pageSpan
	for ck, v := r.c.Seek(kb); ck != nil && bytes.HasPrefix(ck, kb); ck, v = r.c.Next() {
		if len(ck) != chunkKeyLen || binary.BigEndian.Uint32(ck[keyLen:]) != next || uint64(len(out)+len(v)) > n {
			return nil, fmt.Errorf("event %s: payload chunk %d: %w", k, next, errCorrupt)
		}
		out = append(out, v...)
		span.add(v)
		next++
	}
	// Dropped once read whole: reading maps the pages around the one it
	// needs too (the kernel's fault-around), neighbouring chunks among them.
	r.mapped.dropSpan(span)
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("event %s: payload has %d of its %d bytes: %w", k, len(out), n, errCorrupt)
	}
	return out, nil
}

// maxPayload bounds a stored payload's claimed length (a damaged record
// must not make the reader allocate gigabytes).
const maxPayload = 1 << 32

// dropMappedEvery is how many bytes the store's readers and writers go
// through its mapping between two dropMapped.
const dropMappedEvery = 16 << 20

// touched counts bytes read or rewritten through the file's mapping; every
// dropMappedEvery of them the mapping's pages are dropped from the process.
// bbolt reads the file through a shared mapping: every page a read or a
// commit touches stays resident, counted in the process's memory (its RSS,
// a container's limit), until the kernel needs the room, so a backlog sent
// from a store of a few hundred megabytes would end up holding all of it.
// The page cache keeps the pages; the next read maps them again.
func (o *Outbox) touched(n int) {
	if n <= 0 || o.mapTouched.Add(int64(n)) < dropMappedEvery {
		return
	}
	o.mapTouched.Store(0)
	// Its own read transaction: the mapping cannot move while it is open.
	_ = o.db.View(func(tx *bolt.Tx) error {
		mappingOf(tx).dropAll()
		return nil
	})
}

// payloadProblems checks the chunked payloads in a read transaction: every
// chunked record's chunks are all there, numbered from 0 without a gap, and
// add up to its length; every chunk belongs to a chunked record. It calls
// problem for each one found (for a consistency check of the whole file).
func payloadProblems(tx *bolt.Tx, problem func(string)) {
	events, payloads := tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads)
	if events == nil {
		return
	}
	var pc *bolt.Cursor
	if payloads != nil {
		pc = payloads.Cursor()
	}
	// Both buckets are in key order: walk them side by side.
	var ck, cv []byte
	if pc != nil {
		ck, cv = pc.First()
	}
	orphans := func(upTo []byte) {
		for ck != nil && (upTo == nil || bytes.Compare(ck[:min(len(ck), keyLen)], upTo) < 0) {
			problem(fmt.Sprintf("payloads: chunk %x belongs to no event", ck))
			ck, cv = pc.Next()
		}
	}
	ec := events.Cursor()
	for k, v := ec.First(); k != nil; k, v = ec.Next() {
		if len(k) != keyLen {
			continue // the events check reports it
		}
		orphans(k)
		_, inline, size, err := decodeEventHeader(keyFrom(k), v)
		if err != nil || inline != nil {
			for ck != nil && bytes.HasPrefix(ck, k) {
				problem(fmt.Sprintf("payloads: chunk %x belongs to event %s, whose payload is not chunked", ck, keyFrom(k)))
				ck, cv = pc.Next()
			}
			continue
		}
		got, next := 0, uint32(0)
		for ; ck != nil && bytes.HasPrefix(ck, k); ck, cv = pc.Next() {
			if len(ck) != chunkKeyLen || binary.BigEndian.Uint32(ck[keyLen:]) != next {
				problem(fmt.Sprintf("payloads: event %s: chunk %x out of sequence (want number %d)", keyFrom(k), ck, next))
			}
			got += len(cv)
			next++
		}
		if got != size {
			problem(fmt.Sprintf("payloads: event %s: %d bytes in %d chunks, its record says %d", keyFrom(k), got, next, size))
		}
	}
	orphans(nil)
}

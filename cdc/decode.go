package cdc

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/deskhook/deskhook/change"
)

// The decoder parses pgoutput protocol 1 itself rather than through
// pglogrepl.Parse: every read is bounds-checked (a malformed message is an
// error, never a panic), and tuple values are sliced out of one string per
// message instead of being copied byte by byte.

// The memory a decoded batch holds, as the Go allocator hands it out: the
// message text its values are substrings of, each row's struct and value
// array, the batch's change array and the batch itself. queue_bytes bounds
// the sum, so it must count all of it (a small transaction's overhead is
// larger than its text).
var (
	sizeofValue  = int(unsafe.Sizeof(change.Value{}))
	sizeofRow    = change.HeapBytes(int(unsafe.Sizeof(change.Row{})))
	sizeofChange = int(unsafe.Sizeof(change.Change{}))
	// batchOverhead: the Batch, its slot in the queue and the reader's
	// record of the pending transaction.
	batchOverhead = change.HeapBytes(int(unsafe.Sizeof(change.Batch{}))) + 16 + 64
)

// rowBytes is the memory of a decoded row of n values.
func rowBytes(n int) int { return sizeofRow + change.HeapBytes(n*sizeofValue) }

// firstChanges is the initial capacity of a batch's change array: most
// transactions are small; a large one grows it (amortized) to its chunk
// bound.
const firstChanges = 8

// beginPlan says what to do with a transaction that is starting.
type beginPlan struct {
	skip        bool // already handed over or acknowledged: drop it whole
	skipChanges int  // its first skipChanges changes were handed over already
	seq         int  // Seq of its first chunk handed over from now on
}

// decoded is one batch ready to hand over.
type decoded struct {
	batch *change.Batch
	bytes int    // estimated memory
	end   uint64 // end LSN of the commit record, when batch.Last
}

// decoder turns pgoutput messages into batches. It is used by one goroutine.
type decoder struct {
	rels       *relationCache
	maxChanges int
	maxBytes   int
	// onBegin decides about each transaction as it begins.
	onBegin func(pos change.Position, xid uint32) (beginPlan, error)

	inTxn      bool
	pos        change.Position
	xid        uint32
	commitTime time.Time
	plan       beginPlan
	seq        int
	cur        []change.Change
	curBytes   int
	full       bool // cur reached a bound; hand it over before the next change
}

func newDecoder(rels *relationCache, maxChanges, maxBytes int) *decoder {
	return &decoder{rels: rels, maxChanges: maxChanges, maxBytes: maxBytes,
		onBegin: func(change.Position, uint32) (beginPlan, error) { return beginPlan{}, nil }}
}

// reset drops a half-received transaction: the connection it came on is
// gone and the server will send it again.
func (d *decoder) reset() {
	d.inTxn, d.cur, d.curBytes, d.full = false, nil, 0, false
	d.rels.reset()
}

var errShort = errors.New("message truncated")

// msgReader reads big-endian fields from a message, remembering the first
// error instead of panicking.
type msgReader struct {
	s   string
	off int
	err error
}

func (r *msgReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.s)-r.off < n {
		r.err = errShort
		return false
	}
	return true
}

func (r *msgReader) u8() byte {
	if !r.need(1) {
		return 0
	}
	r.off++
	return r.s[r.off-1]
}

func (r *msgReader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	r.off += 2
	return uint16(r.s[r.off-2])<<8 | uint16(r.s[r.off-1])
}

func (r *msgReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	b := r.s[r.off : r.off+4]
	r.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *msgReader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	b := r.s[r.off : r.off+8]
	r.off += 8
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// str returns the next n bytes, sharing the message's memory.
func (r *msgReader) str(n int) string {
	if !r.need(n) {
		return ""
	}
	r.off += n
	return r.s[r.off-n : r.off]
}

// cstring returns a NUL-terminated string as a copy (names outlive the message).
func (r *msgReader) cstring() string {
	if r.err != nil {
		return ""
	}
	i := strings.IndexByte(r.s[r.off:], 0)
	if i < 0 {
		r.err = errors.New("string not terminated")
		return ""
	}
	s := strings.Clone(r.s[r.off : r.off+i])
	r.off += i + 1
	return s
}

// pgTime converts microseconds since 2000-01-01 UTC.
func pgTime(us uint64) time.Time {
	return time.UnixMicro(946684800_000000 + int64(us)).UTC()
}

// decode handles one pgoutput message. ok says whether out holds a batch to
// hand over; at most one batch comes out of each message.
func (d *decoder) decode(msg []byte) (out decoded, ok bool, err error) {
	if len(msg) == 0 {
		return out, false, errors.New("pgoutput: empty message")
	}
	typ := msg[0]
	// One string per message: tuple values are substrings of it.
	r := &msgReader{s: string(msg[1:])}
	switch typ {
	case 'B':
		err = d.begin(r)
	case 'C':
		out, ok, err = d.commit(r)
	case 'R':
		err = d.relation(r)
	case 'Y':
		oid := r.u32()
		r.cstring() // namespace
		if name := r.cstring(); r.err == nil {
			d.rels.types[oid] = name
		}
	case 'O', 'M':
		// Origin: deskhook reads one server. Message: not requested.
	case 'I', 'U', 'D', 'T':
		out, ok, err = d.change(typ, r, len(msg))
	default:
		return out, false, fmt.Errorf("pgoutput: unexpected message type %q", typ)
	}
	if err == nil && r.err != nil {
		err = r.err
	}
	if err != nil {
		return decoded{}, false, fmt.Errorf("pgoutput %s message: %w", msgName(typ), err)
	}
	return out, ok, nil
}

func msgName(t byte) string {
	switch t {
	case 'B':
		return "Begin"
	case 'C':
		return "Commit"
	case 'R':
		return "Relation"
	case 'Y':
		return "Type"
	case 'I':
		return "Insert"
	case 'U':
		return "Update"
	case 'D':
		return "Delete"
	case 'T':
		return "Truncate"
	}
	return fmt.Sprintf("%q", t)
}

func (d *decoder) begin(r *msgReader) error {
	final, ts, xid := r.u64(), r.u64(), r.u32()
	if r.err != nil {
		return r.err
	}
	if d.inTxn {
		return fmt.Errorf("pgoutput Begin of %s while transaction %s is open", change.Position(final), d.pos)
	}
	plan, err := d.onBegin(change.Position(final), xid)
	if err != nil {
		return err
	}
	d.inTxn, d.pos, d.xid, d.commitTime, d.plan = true, change.Position(final), xid, pgTime(ts), plan
	d.seq, d.cur, d.curBytes, d.full = plan.seq, nil, 0, false
	return nil
}

func (d *decoder) commit(r *msgReader) (decoded, bool, error) {
	r.u8() // flags, unused
	lsn, end := r.u64(), r.u64()
	r.u64() // commit time, as in Begin
	if r.err != nil {
		return decoded{}, false, r.err
	}
	if !d.inTxn {
		return decoded{}, false, fmt.Errorf("pgoutput Commit %s outside a transaction", change.Position(lsn))
	}
	if change.Position(lsn) != d.pos {
		return decoded{}, false, fmt.Errorf("pgoutput Commit %s does not match Begin %s", change.Position(lsn), d.pos)
	}
	d.inTxn = false
	if d.plan.skip {
		return decoded{}, false, nil
	}
	if d.plan.skipChanges > 0 {
		return decoded{}, false, fmt.Errorf("transaction %s arrived again with fewer changes than were handed over before", d.pos)
	}
	if d.seq == 0 && len(d.cur) == 0 {
		return decoded{}, false, nil // nothing published in it
	}
	out := d.emit(true)
	out.end = end
	return out, true, nil
}

func (d *decoder) emit(last bool) decoded {
	b := &change.Batch{Pos: d.pos, Xid: d.xid, CommitTime: d.commitTime, Seq: d.seq, Last: last, Changes: d.cur}
	out := decoded{batch: b, bytes: d.curBytes + change.HeapBytes(cap(d.cur)*sizeofChange) + batchOverhead}
	d.seq++
	d.cur, d.curBytes, d.full = nil, 0, false
	return out
}

func (d *decoder) relation(r *msgReader) error {
	id := r.u32()
	schema, name := r.cstring(), r.cstring()
	r.u8() // replica identity setting; the key flags below say what we need
	n := int(r.u16())
	if r.err != nil {
		return r.err
	}
	if n > (len(r.s)-r.off)/10 { // each column takes at least 10 bytes
		return fmt.Errorf("relation %s.%s claims %d columns in %d bytes", schema, name, n, len(r.s)-r.off)
	}
	cols := make([]columnSpec, n)
	for i := range cols {
		flags := r.u8()
		cols[i].name = r.cstring()
		cols[i].oid = r.u32()
		r.u32() // type modifier
		cols[i].key = flags&1 != 0
	}
	if r.err != nil {
		return r.err
	}
	return d.rels.put(id, schema, name, cols)
}

func (d *decoder) change(typ byte, r *msgReader, size int) (out decoded, ok bool, err error) {
	if !d.inTxn {
		return out, false, errors.New("change outside a transaction")
	}
	if typ == 'T' {
		return d.truncate(r, size)
	}
	rel, err := d.rels.get(r.u32())
	if err != nil || r.err != nil {
		return out, false, errors.Join(err, r.err)
	}
	c := change.Change{Table: rel.table}
	tag := r.u8()
	n := len(rel.oids)
	switch typ {
	case 'I':
		c.Op = change.Insert
		if tag != 'N' {
			return out, false, fmt.Errorf("%s: tuple tag %q, want 'N'", rel.table.Name, tag)
		}
		c.New = &change.Row{Table: rel.table, Values: make([]change.Value, n)}
		err = d.tuple(r, rel, false, c.New.Values)
	case 'U':
		c.Op = change.Update
		if tag == 'K' || tag == 'O' {
			// Both rows in one allocation each for the structs and the
			// values: they live and die together.
			rows := new([2]change.Row)
			vals := make([]change.Value, 2*n)
			c.Old, c.New = &rows[0], &rows[1]
			*c.Old = change.Row{Table: rel.table, Values: vals[:n:n]}
			*c.New = change.Row{Table: rel.table, Values: vals[n:]}
			if err = d.tuple(r, rel, tag == 'K', c.Old.Values); err != nil {
				return out, false, err
			}
			tag = r.u8()
		} else {
			c.New = &change.Row{Table: rel.table, Values: make([]change.Value, n)}
		}
		if tag != 'N' {
			return out, false, fmt.Errorf("%s: tuple tag %q, want 'N'", rel.table.Name, tag)
		}
		if err = d.tuple(r, rel, false, c.New.Values); err == nil && c.Old != nil {
			fillUnchanged(c.New, c.Old)
		}
	case 'D':
		c.Op = change.Delete
		if tag != 'K' && tag != 'O' {
			return out, false, fmt.Errorf("%s: tuple tag %q, want 'K' or 'O'", rel.table.Name, tag)
		}
		c.Old = &change.Row{Table: rel.table, Values: make([]change.Value, n)}
		err = d.tuple(r, rel, tag == 'K', c.Old.Values)
	}
	if err != nil {
		return out, false, err
	}
	// The message's text (its values are substrings of it) and the rows.
	bytes := change.HeapBytes(size - 1)
	switch {
	case c.Old != nil && c.New != nil:
		bytes += change.HeapBytes(2*int(unsafe.Sizeof(change.Row{}))) + change.HeapBytes(2*n*sizeofValue)
	case c.Old != nil || c.New != nil:
		bytes += rowBytes(n)
	}
	return d.add(bytes, c)
}

// fillUnchanged takes unchanged TOASTed values of an update from the old row.
func fillUnchanged(newRow, oldRow *change.Row) {
	for i, v := range newRow.Values {
		if v.Kind == change.KindUnchanged && i < len(oldRow.Values) && oldRow.Values[i].Kind != change.KindUnchanged {
			newRow.Values[i] = oldRow.Values[i]
		}
	}
}

func (d *decoder) truncate(r *msgReader, size int) (out decoded, ok bool, err error) {
	n := int(r.u32())
	r.u8() // options: CASCADE, RESTART IDENTITY
	if r.err != nil {
		return out, false, r.err
	}
	if n > (len(r.s)-r.off)/4 {
		return out, false, fmt.Errorf("claims %d relations in %d bytes", n, len(r.s)-r.off)
	}
	// One Change per table. A Truncate message is a single change as far
	// as chunking goes: it names at most a handful of tables.
	var cs []change.Change
	for range n {
		rel, err := d.rels.get(r.u32())
		if err != nil {
			return out, false, err
		}
		if !d.plan.skip {
			d.rels.truncated(rel.table, d.pos)
		}
		cs = append(cs, change.Change{Op: change.Truncate, Table: rel.table})
	}
	if len(cs) == 0 {
		return out, false, nil
	}
	out, ok, err = d.add(change.HeapBytes(size-1), cs[0])
	for _, c := range cs[1:] {
		d.appendChange(0, c)
	}
	return out, ok, err
}

// tuple decodes a TupleData into vals (one per column of rel). In a key
// tuple ('K': the default replica identity) pgoutput sends NULL for the
// columns outside the key; those are KindUnchanged, not NULL.
func (d *decoder) tuple(r *msgReader, rel *relation, keyOnly bool, vals []change.Value) error {
	n := int(r.u16())
	if r.err != nil {
		return r.err
	}
	if n != len(rel.oids) {
		return fmt.Errorf("%s.%s: tuple has %d columns, relation has %d",
			rel.table.Schema, rel.table.Name, n, len(rel.oids))
	}
	for i := range vals {
		switch kind := r.u8(); kind {
		case 'n':
			if keyOnly && !rel.key[i] {
				vals[i].Kind = change.KindUnchanged
			} else {
				vals[i].Kind = change.KindNull
			}
		case 'u':
			vals[i].Kind = change.KindUnchanged
		case 't':
			text := r.str(int(r.u32()))
			vals[i] = decodeValue(rel.oids[i], text)
		case 'b':
			return fmt.Errorf("%s: binary value in column %s (binary mode was not requested)",
				rel.table.Name, rel.table.Columns[i].Name)
		default:
			if r.err != nil {
				return r.err
			}
			return fmt.Errorf("%s: unknown value kind %q in column %s", rel.table.Name, kind, rel.table.Columns[i].Name)
		}
	}
	return r.err
}

// add appends a change to the transaction, handing over the chunk before it
// when that chunk is full. Changes of a transaction being resumed after a
// reconnect are dropped until the ones handed over before are passed.
func (d *decoder) add(size int, c change.Change) (out decoded, ok bool, err error) {
	if d.plan.skip {
		return out, false, nil
	}
	if d.plan.skipChanges > 0 {
		d.plan.skipChanges--
		return out, false, nil
	}
	if d.full {
		out, ok = d.emit(false), true
	}
	d.appendChange(size, c)
	return out, ok, nil
}

func (d *decoder) appendChange(size int, c change.Change) {
	if d.plan.skip {
		return
	}
	if d.plan.skipChanges > 0 {
		d.plan.skipChanges--
		return
	}
	if d.cur == nil {
		d.cur = make([]change.Change, 0, min(d.maxChanges, firstChanges))
	}
	d.cur = append(d.cur, c)
	d.curBytes += size
	if len(d.cur) >= d.maxChanges || d.curBytes >= d.maxBytes {
		d.full = true
	}
}

package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps the file into memory and trusts it: a page id, an element's
// offset or a size read from a damaged page sends it outside the mapping or
// past the end of a truncated file, which is a SIGBUS or SIGSEGV that no
// recover catches, or an assertion that panics in one of bbolt's own
// goroutines (it walks every page at a read-write open, to rebuild the free
// list). So before bbolt opens a file, walkFile reads its structure itself,
// checking every offset against the file's length before it reads there
// (the headers with plain reads; the pages from a read-only mapping of the
// length the headers declare, once that length is known to be in the file,
// or with plain reads where nothing is mapped), and checks every reference
// bbolt would follow: both header (meta) pages, the file's length
// against the page count they declare, and every branch and leaf page
// reachable from the root: its id and type, its elements within the page,
// keys in order (also across levels), child pages within the file and
// referenced once. A file that passes cannot make bbolt touch memory
// outside the file. The content of the values (deskhook's records) is
// checked by Check, through bbolt, once this walk has passed.
//
// The layout read here is bbolt's (go.etcd.io/bbolt, file format version
// 2), in the machine's byte order as bbolt writes it:
//
//	page header  id u64 | flags u16 | count u16 | overflow u32     (16 bytes)
//	meta         magic u32 | version u32 | page size u32 | flags u32 |
//	             root bucket (root page u64, sequence u64) | freelist u64 |
//	             page count u64 | txid u64 | FNV-64a checksum of the above
//	branch elem  pos u32 | key size u32 | child page u64             (16 bytes)
//	leaf elem    flags u32 | pos u32 | key size u32 | value size u32 (16 bytes)
//
// An element's pos is counted from the element itself. A leaf element with
// flag 1 is a sub-bucket: its value is a bucket header (root page u64,
// sequence u64), followed, when the root is 0, by the bucket's whole leaf
// page (an inline bucket).

const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltElemSize     = 16
	boltMetaSize     = 64
	boltBucketHeader = 16
	boltNoFreelist   = ^uint64(0)

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafBucket   = 0x01

	// maxProblems bounds what one walk reports; the first ones say enough.
	maxProblems = 50
)

var ne = binary.NativeEndian

// boltMeta is one decoded header page.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // pages in use: the high-water mark
	txid     uint64
	err      string // why bbolt would reject it; "" when valid
}

// fileLayout is what walkFile learnt about a file.
type fileLayout struct {
	size     int64
	pageSize int
	metas    [2]boltMeta
	meta     boltMeta // the header bbolt uses: the valid one with the higher txid
	used     int      // pages reachable from the root (and the freelist's)
	walked   bool     // the pages were walked (the headers allowed it)
	// topBuckets are the names of the root's buckets, in order.
	topBuckets []string
	problems   []string
	truncated  bool // the file is shorter than its header says
	foreign    string
	seen       []uint64 // bit per page: reachable (for tests)
}

func (l *fileLayout) problem(format string, args ...any) {
	if len(l.problems) < maxProblems {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	} else if len(l.problems) == maxProblems {
		l.problems = append(l.problems, "(more problems not listed)")
	}
}

// free is the number of pages below the high-water mark that hold nothing.
func (l *fileLayout) free() int {
	if !l.walked {
		return 0
	}
	return max(int(l.meta.pgid)-2-l.used, 0)
}

// walkFile checks f's structure (see above). It fails only when f cannot be
// read; what is wrong with the file is in the layout's problems (and
// foreign, when it is no bbolt file at all).
func walkFile(f *os.File) (*fileLayout, error) { return walk(f, true) }

// walk is walkFile, with the pages mapped or read.
func walk(f *os.File, mapped bool) (*fileLayout, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := &fileLayout{size: fi.Size()}
	if l.size == 0 {
		l.foreign = "it is empty (0 bytes)"
		return l, nil
	}
	if !l.readMetas(f) {
		return l, nil
	}
	l.walked = true
	w := &walker{f: f, l: l, ps: l.pageSize, hwm: l.meta.pgid, seen: make([]uint64, (l.meta.pgid+63)/64)}
	// Mapped, the walk makes no system call per page (a read each costs
	// more than the checks); the length is checked, so only a file cut
	// short meanwhile by someone ignoring the lock could fault, which
	// protect turns into an error.
	if data, unmap, err := mapFile(f, int64(l.meta.pgid)*int64(l.pageSize)); mapped && err == nil {
		defer unmap()
		w.data = data
	} else if err == nil {
		unmap()
	}
	err = protect(func() error {
		if l.meta.freelist != boltNoFreelist {
			w.freelist(l.meta.freelist)
		}
		w.bucket("", l.meta.root, nil, 0)
		return w.err
	})
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		l.problem("the file changed while it was read: %v", err)
	case err != nil:
		return nil, err
	}
	l.seen = w.seen
	return l, nil
}

// readMetas reads both header pages and picks the one bbolt would use. It
// returns false when none is usable or the file is cut short.
func (l *fileLayout) readMetas(f *os.File) bool {
	var head [4096]byte
	n, _ := f.ReadAt(head[:], 0)
	// bbolt takes the page size from the first header, or else from a
	// second one found at a power of two from 1 KiB.
	m0 := decodeMeta(head[:n])
	ps := 0
	m1 := boltMeta{err: "not found"}
	if m0.err == "" {
		ps = int(m0.pageSize)
	} else {
		var buf [4096]byte
		for pos := int64(1024); pos <= 1<<24 && pos < l.size-1024; pos <<= 1 {
			k, _ := f.ReadAt(buf[:], pos)
			m := decodeMeta(buf[:k])
			if m.err == "" && int64(m.pageSize) == pos {
				ps = int(m.pageSize)
				break
			}
			if m.err != errNoMagic && m1.err == "not found" {
				m1 = m
			}
		}
	}
	if ps == 0 {
		if m0.err != errNoMagic || m1.err != "not found" {
			l.problem("both header pages are damaged (page 0: %s; page 1: %s)", m0.err, m1.err)
			return false
		}
		l.foreign = sniff(head[:n])
		return false
	}
	if ps < 1024 || ps > 1<<16 || ps&(ps-1) != 0 {
		l.problem("the header gives a page size of %d bytes", ps)
		return false
	}
	l.pageSize = ps
	l.metas[0] = decodeMeta(head[:n])
	buf := make([]byte, boltPageHeader+boltMetaSize)
	k, _ := f.ReadAt(buf, int64(ps))
	l.metas[1] = decodeMeta(buf[:k])
	a, b := l.metas[0], l.metas[1]
	if b.txid > a.txid {
		a, b = b, a
	}
	switch {
	case a.err == "":
		l.meta = a
	case b.err == "":
		l.meta = b
	default:
		l.problem("both header pages are damaged (page 0: %s; page 1: %s)", l.metas[0].err, l.metas[1].err)
		return false
	}
	for i, m := range l.metas {
		if m.err != "" {
			l.problem("header page %d is damaged (%s); bbolt uses the other one, of transaction %d "+
				"(harmless after a crash during a commit, which the next commit repairs; otherwise the last commit is lost)",
				i, m.err, l.meta.txid)
		}
	}
	m := l.meta
	if int(m.pageSize) != ps {
		l.problem("the header gives a page size of %d bytes, the other %d", m.pageSize, ps)
		return false
	}
	if m.pgid < 3 || m.root < 2 || m.root >= m.pgid || (m.freelist != boltNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		l.problem("the header of transaction %d is inconsistent (root page %d, freelist page %d, %d pages)",
			m.txid, m.root, int64(m.freelist), m.pgid)
		return false
	}
	if need := int64(m.pgid) * int64(ps); need > l.size {
		l.truncated = true
		l.problem("the file is cut short: it is %d bytes, but its header says it holds %d pages of %d bytes (%d bytes)",
			l.size, m.pgid, ps, need)
		return false
	}
	return true
}

const errNoMagic = "no bbolt magic number"

func decodeMeta(page []byte) boltMeta {
	if len(page) < boltPageHeader+boltMetaSize {
		return boltMeta{err: "too short"}
	}
	b := page[boltPageHeader:]
	m := boltMeta{
		pageSize: ne.Uint32(b[8:]),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
	}
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case ne.Uint32(b) != boltMagic:
		m.err = errNoMagic
	case ne.Uint32(b[4:]) != boltVersion:
		m.err = fmt.Sprintf("bbolt file format %d, not %d", ne.Uint32(b[4:]), boltVersion)
	case ne.Uint64(b[56:]) != h.Sum64():
		m.err = "checksum mismatch"
	}
	return m
}

// sniff names what a file that is no bbolt file seems to be.
func sniff(head []byte) string {
	kinds := []struct{ magic, what string }{
		{"SQLite format 3\x00", "an SQLite database"},
		{"\x89PNG\r\n\x1a\n", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"%PDF-", "a PDF document"},
		{"\x1f\x8b", "a gzip file"},
		{"PK\x03\x04", "a zip file"},
		{"\x7fELF", "an executable"},
	}
	for _, k := range kinds {
		if bytes.HasPrefix(head, []byte(k.magic)) {
			return "it is " + k.what + ", not a bbolt file"
		}
	}
	if len(bytes.Trim(head, "\x00")) == 0 {
		return "its header is all zero bytes: no bbolt file, or one whose beginning was overwritten"
	}
	return "it has no valid bbolt header: no bbolt file, or one whose headers are both damaged"
}

// walker follows the page tree.
type walker struct {
	f    *os.File
	l    *fileLayout
	ps   int
	hwm  uint64
	seen []uint64 // bit per page
	data []byte   // the file's pages, mapped; nil: read them
	bufs [][]byte // one read buffer per depth
	err  error    // a read error: the walk stops
}

// read returns n pages from id, from the mapping or read into the
// depth's buffer.
func (w *walker) read(depth int, id uint64, n int) []byte {
	if w.data != nil {
		return w.data[int(id)*w.ps : (int(id)+n)*w.ps]
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	size := n * w.ps
	if cap(w.bufs[depth]) < size {
		w.bufs[depth] = make([]byte, size)
	}
	b := w.bufs[depth][:size]
	if _, err := w.f.ReadAt(b, int64(id)*int64(w.ps)); err != nil && w.err == nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("page %d: %w", id, io.ErrUnexpectedEOF) // the length was checked: the file shrank
		}
		w.err = err
	}
	return b
}

// claim marks pages id…id+overflow as used; false when one is out of range
// or already used.
func (w *walker) claim(where fmt.Stringer, id uint64, overflow uint32) bool {
	end := id + uint64(overflow)
	if id < 2 || end >= w.hwm || end < id {
		w.l.problem("%s: page %d (+%d overflow) is outside the file's %d pages", where, id, overflow, w.hwm)
		return false
	}
	for p := id; p <= end; p++ {
		if w.seen[p/64]&(1<<(p%64)) != 0 {
			w.l.problem("%s: page %d is used twice", where, p)
			return false
		}
	}
	for p := id; p <= end; p++ {
		w.seen[p/64] |= 1 << (p % 64)
	}
	w.l.used += int(overflow) + 1
	return true
}

// page reads a tree page: its header must give its id and a branch or leaf
// type, and its overflow must stay within the file.
func (w *walker) page(where fmt.Stringer, id uint64, depth int) (b []byte, ok bool) {
	if id < 2 || id >= w.hwm {
		w.l.problem("%s: refers to page %d, outside the file's %d pages", where, id, w.hwm)
		return nil, false
	}
	b = w.read(depth, id, 1)
	if w.err != nil {
		return nil, false
	}
	if got := ne.Uint64(b); got != id {
		w.l.problem("%s: page %d is damaged: its header says page %d", where, id, got)
		return nil, false
	}
	if fl := ne.Uint16(b[8:]); fl != flagBranch && fl != flagLeaf {
		w.l.problem("%s: page %d is damaged: page type %#x, want a branch or leaf page", where, id, fl)
		return nil, false
	}
	overflow := ne.Uint32(b[12:])
	if !w.claim(where, id, overflow) {
		return nil, false
	}
	if overflow > 0 {
		b = w.read(depth, id, int(overflow)+1)
	}
	return b, w.err == nil
}

// freelist checks a freelist page (files written with the freelist synced).
func (w *walker) freelist(id uint64) {
	b := w.read(0, id, 1)
	if w.err != nil {
		return
	}
	if ne.Uint16(b[8:]) != flagFreelist {
		w.l.problem("freelist page %d is damaged: page type %#x", id, ne.Uint16(b[8:]))
		return
	}
	overflow := ne.Uint32(b[12:])
	if !w.claim(place{bucket: "freelist"}, id, overflow) {
		return
	}
	b = w.read(0, id, int(overflow)+1)
	n, at := uint64(ne.Uint16(b[10:])), uint64(boltPageHeader)
	if n == 0xffff {
		n, at = ne.Uint64(b[boltPageHeader:]), boltPageHeader+8
	}
	if n > uint64(len(b)-int(at))/8 {
		w.l.problem("freelist page %d is damaged: %d entries do not fit", id, n)
		return
	}
	for i := uint64(0); i < n; i++ {
		if p := ne.Uint64(b[at+8*i:]); p < 2 || p >= w.hwm {
			w.l.problem("freelist page %d is damaged: it lists page %d, outside the file's %d pages", id, p, w.hwm)
			return
		}
	}
}

// bucket walks a bucket stored at root (a page id), or, when root is 0,
// inline in value.
func (w *walker) bucket(path string, root uint64, inline []byte, depth int) {
	where := place{bucket: path}
	if root == 0 {
		if len(inline) < boltPageHeader || ne.Uint16(inline[8:]) != flagLeaf {
			w.l.problem("%s: damaged inline bucket", where)
			return
		}
		w.elements(path, where, inline, true, nil, nil, depth)
		return
	}
	w.tree(path, root, nil, nil, depth)
}

// tree walks the subtree at id whose keys lie in [lo, hi) (nil: open).
func (w *walker) tree(path string, id uint64, lo, hi []byte, depth int) {
	where := place{bucket: path}
	if w.err != nil || len(w.l.problems) > maxProblems || depth > 64 {
		return
	}
	b, ok := w.page(where, id, depth)
	if !ok {
		return
	}
	leaf := ne.Uint16(b[8:]) == flagLeaf
	w.elements(path, place{bucket: path, page: id}, b, leaf, lo, hi, depth)
}

// elements checks and follows the elements of page b.
func (w *walker) elements(path string, where place, b []byte, leaf bool, lo, hi []byte, depth int) {
	count := int(ne.Uint16(b[10:]))
	if !leaf && count == 0 {
		w.l.problem("%s: damaged: a branch page without elements", where)
		return
	}
	if boltPageHeader+count*boltElemSize > len(b) {
		w.l.problem("%s: damaged: %d elements do not fit in the page", where, count)
		return
	}
	var prev []byte
	for i := 0; i < count; i++ {
		off := boltPageHeader + i*boltElemSize
		e := b[off : off+boltElemSize]
		var flags, pos, ksize, vsize uint64
		var child uint64
		if leaf {
			flags, pos, ksize, vsize = uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		} else {
			pos, ksize, child = uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
		}
		start := uint64(off) + pos
		if ksize == 0 || start+ksize+vsize > uint64(len(b)) || flags&^leafBucket != 0 {
			w.l.problem("%s: damaged: element %d (offset %d, key %d bytes, value %d bytes, flags %#x) does not fit the page",
				where, i, pos, ksize, vsize, flags)
			return
		}
		key := b[start : start+ksize]
		switch {
		case prev != nil && bytes.Compare(prev, key) >= 0:
			w.l.problem("%s: damaged: keys out of order at element %d", where, i)
			return
		case lo != nil && bytes.Compare(key, lo) < 0, hi != nil && bytes.Compare(key, hi) >= 0:
			w.l.problem("%s: damaged: element %d's key lies outside the range its parent page gives", where, i)
			return
		}
		prev = key
		if !leaf {
			next := hi
			if i+1 < count {
				ne2 := b[off+boltElemSize:]
				p2, k2 := uint64(off+boltElemSize)+uint64(ne.Uint32(ne2)), uint64(ne.Uint32(ne2[4:]))
				if k2 == 0 || p2+k2 > uint64(len(b)) {
					w.l.problem("%s: damaged: element %d does not fit the page", where, i+1)
					return
				}
				next = b[p2 : p2+k2]
			}
			w.tree(path, child, key, next, depth+1)
			continue
		}
		if flags&leafBucket == 0 {
			continue
		}
		value := b[start+ksize : start+ksize+vsize]
		if len(value) < boltBucketHeader {
			w.l.problem("%s: damaged: sub-bucket %q has a %d-byte header", where, key, len(value))
			return
		}
		sub := string(key)
		if path != "" {
			sub = path + "/" + sub
		} else {
			w.l.topBuckets = append(w.l.topBuckets, sub)
		}
		w.bucket(sub, ne.Uint64(value), value[boltBucketHeader:], depth+1)
	}
}

// place names where in the file a problem is, for its message (built
// only then).
type place struct {
	bucket string // a bucket's path, or "freelist"
	page   uint64 // 0: the bucket (or inline page) itself
}

func (p place) String() string {
	var s string
	switch p.bucket {
	case "":
		s = "the root bucket"
	case "freelist":
		s = "the freelist"
	default:
		s = fmt.Sprintf("bucket %q", p.bucket)
	}
	if p.page != 0 {
		s += fmt.Sprintf(", page %d", p.page)
	}
	return s
}

//go:build linux

package outbox

import (
	"os"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// fileMap is the part of the store's file bbolt has mapped into memory, as
// a read transaction sees it (the mapping cannot move while one is open).
type fileMap struct {
	lo, hi uintptr
	// anchor points into the mapping: addresses in it are made pointers
	// from it.
	anchor unsafe.Pointer
}

var osPage = uintptr(os.Getpagesize())

// mappingOf returns the mapping as of tx, a read transaction: its values
// all lie in the mapping (a write transaction's may be in the heap).
func mappingOf(tx *bolt.Tx) fileMap {
	v := tx.Bucket(bucketMeta).Get(keyVersion)
	if len(v) == 0 {
		return fileMap{}
	}
	lo := tx.DB().Info().Data
	return fileMap{lo: lo, hi: lo + uintptr(tx.Size()), anchor: unsafe.Pointer(unsafe.SliceData(v))}
}

// madvise drops the pages of [from, to) (page aligned, in the mapping).
func (m fileMap) madvise(from, to uintptr) {

	p := unsafe.Add(m.anchor, -int(uintptr(m.anchor)-from))
	_ = unix.Madvise(unsafe.Slice((*byte)(p), to-from), unix.MADV_DONTNEED)
}

// end is where the mapping's last page ends: bbolt maps whole pages and
// more, past the file's data.
func (m fileMap) end() uintptr { return (m.hi + osPage - 1) &^ (osPage - 1) }

// pageSpan is the address range of some values read in a transaction.
type pageSpan struct{ from, to uintptr }

func (s *pageSpan) add(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if s.to == 0 || start < s.from {
		s.from = start
	}
	s.to = max(s.to, start+uintptr(len(b)))
}

// dropSpan tells the kernel that this process no longer needs the mapped
// pages of span (values it read in the transaction): they leave its
// resident memory (the page cache keeps them; a later read maps them
// again). The mapping is shared and read-only, so nothing is lost: pages
// in the span that hold other data are dropped to the same effect, and the
// edges are rounded out to whole pages. Memory outside the mapping is
// never touched.
func (m fileMap) dropSpan(s pageSpan) {
	if s.to == 0 || m.anchor == nil || s.from < m.lo || s.to > m.hi {
		return
	}
	m.madvise(s.from&^(osPage-1), min((s.to+osPage-1)&^(osPage-1), m.end()))
}

// dropAll drops every mapped page from the process (see drop).
func (m fileMap) dropAll() {
	if m.anchor != nil && m.hi > m.lo {
		m.madvise(m.lo, m.end())
	}
}

package mapping

import (
	"runtime"
	"strings"
	"testing"
)

// TestStateMemoryBoundedByBytes: the state's memory is bounded by bytes,
// not only by a count of tickets: with the default configuration, 320
// tickets whose first threads are 256 KB each (HTML mails with inline
// images are that large) do not keep 80 MB alive.
func TestStateMemoryBoundedByBytes(t *testing.T) {
	const tickets, bodySize = 320, 256 << 10
	body := strings.Repeat("<p>x</p>", bodySize/8)
	m, _ := newTestMapper(t, newMemSource(), nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for id := 1; id <= tickets; id++ {
		mustMap(t, m, txn(id, ins(ticketRow(id, 5, 1, 1, nil)), ins(mkRow(threadsT, id, id, 5, nil, "client", 0, body))))
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	limit := int64(DefaultStateBytes) + DefaultStateBytes/4 + 8<<20
	t.Logf("state holds %d tickets; heap grew by %d MB (limit %d MB)", m.tickets.len(), growth>>20, limit>>20)
	if growth > limit {
		t.Errorf("heap grew by %d MB for %d MB of first threads; want at most %d MB", growth>>20,
			tickets*bodySize>>20, limit>>20)
	}
	runtime.KeepAlive(m)
}

// TestLRUByteBound: a sized LRU keeps its entries' cost within maxBytes,
// counts values resized in place, and lets go of a single entry larger than
// the bound.
func TestLRUByteBound(t *testing.T) {
	c := newSizedLRU(100, 10, func(s *string) int { return len(*s) })
	str := func(s string) *string { return &s }
	c.put(1, str("aaaa"))
	c.put(2, str("bbbb"))
	c.put(3, str("cc")) // 10 bytes: all kept
	if c.len() != 3 || c.bytes != 10 {
		t.Fatalf("len %d, bytes %d", c.len(), c.bytes)
	}
	c.put(4, str("d")) // 11: the least recent (1) goes
	if _, ok := c.get(1); ok || c.bytes != 7 {
		t.Errorf("1 kept, bytes %d", c.bytes)
	}
	v, _ := c.get(2) // 2 is now the most recent
	*v = "bbbbbbbb"
	c.resize(2) // 3+1+8 = 12: 3 goes, then 4
	if _, ok := c.get(3); ok || c.bytes > 10 {
		t.Errorf("after resize: 3 kept or bytes %d", c.bytes)
	}
	c.put(5, str(strings.Repeat("x", 11))) // alone over the bound
	if c.len() != 0 || c.bytes != 0 {
		t.Errorf("oversized entry: len %d, bytes %d", c.len(), c.bytes)
	}
	c.put(6, str("y"))
	c.remove(6)
	c.put(7, str("zz"))
	c.clear()
	if c.len() != 0 || c.bytes != 0 {
		t.Errorf("after clear: len %d, bytes %d", c.len(), c.bytes)
	}
}

package mapping

import (
	"context"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stateHeap maps the benchmark workload (full Faveo rows, 5 transactions
// per ticket) for n tickets and returns the heap the mapper's state holds
// afterwards and its own estimate of the tickets' bytes.
func stateHeap(t testing.TB, n int) (m *Mapper, heap, estimate int64) {
	t.Helper()
	src := newMemSource()
	m, err := New(Config{AppKey: testAppKey, StateSize: n + 1, StateBytes: 1 << 30}, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var thread int64
	ctx := context.Background()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for id := int64(1); id <= int64(n); id++ {
		for _, b := range benchWorkload(id, &thread) {
			if _, err := m.Map(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return m, int64(after.HeapAlloc) - int64(before.HeapAlloc), int64(m.tickets.bytes)
}

// TestStateCostEstimate: the state's byte bound is honest. What the
// tickets' cost function counts is within 15% of the heap they really hold
// (struct, rendered bytes, LRU entry and map slot, allocator rounding), so
// StateBytes bounds real memory.
func TestStateCostEstimate(t *testing.T) {
	const n = 20000
	m, heap, est := stateHeap(t, n)
	if kept := m.tickets.len(); kept != n {
		t.Fatalf("state kept %d of %d tickets", kept, n)
	}
	if got, want := testutil.ToFloat64(m.metrics.bytes), float64(m.tickets.bytes+m.users.bytes); got != want {
		t.Errorf("deskhook_mapping_state_bytes = %v, want %v", got, want)
	}
	t.Logf("%d tickets: heap %d B/ticket, estimate %d B/ticket", n, heap/n, est/n)
	if est < heap*85/100 || est > heap*130/100 {
		t.Errorf("estimate %d B per ticket, heap %d B per ticket: want the estimate within -15%%/+30%%", est/n, heap/n)
	}
}

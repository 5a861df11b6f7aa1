package cdc

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// heapLimit is what the reader's heap must stay under while a transaction
// of any size flows through (issue 3).
const heapLimit = 100 << 20

// heapSampler records the process's peak heap, sampled every few
// milliseconds from its own goroutine.
type heapSampler struct {
	stop      chan struct{}
	done      chan struct{}
	peakInuse uint64
	peakAlloc uint64
	samples   int
}

func sampleHeap() *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			s.peakInuse = max(s.peakInuse, ms.HeapInuse)
			s.peakAlloc = max(s.peakAlloc, ms.HeapAlloc)
			s.samples++
			select {
			case <-tick.C:
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

// finish stops sampling; the peaks are valid afterwards.
func (s *heapSampler) finish() {
	close(s.stop)
	<-s.done
}

// largeTxnResult is what one large transaction's run measured.
type largeTxnResult struct {
	rows, chunks         int
	peakInuse, peakAlloc uint64
	queueFullSeen        int // chunks the consumer found the queue full before taking
	elapsed              time.Duration
	update, firstChunk   time.Duration // the UPDATE's duration; the first chunk's arrival
}

func (r largeTxnResult) String() string {
	return fmt.Sprintf("%d rows in %d chunks in %s (UPDATE %s, first chunk after %s): peak HeapInuse %.1f MB, HeapAlloc %.1f MB; queue full before %d chunks",
		r.rows, r.chunks, r.elapsed.Round(time.Millisecond), r.update.Round(time.Millisecond),
		r.firstChunk.Round(time.Millisecond), float64(r.peakInuse)/(1<<20), float64(r.peakAlloc)/(1<<20),
		r.queueFullSeen)
}

// runLargeTxn streams one UPDATE of n tickets rows (REPLICA IDENTITY FULL:
// each change carries the old and the new row, 41 columns each) through a
// Reader with the default bounds, to a consumer slower than the reader:
// before taking each chunk it waits until the reader has filled the queue,
// so memory is measured at its worst. It checks the chunks and returns the
// peak heap.
func runLargeTxn(tb testing.TB, n int) largeTxnResult {
	tb.Helper()
	f := newFixture(tb, false, testenv.NoFsync())
	// The rows exist before the slot, so only the UPDATE flows.
	f.db.Exec(tb, fmt.Sprintf(`INSERT INTO tickets (ticket_number, user_id, dept_id, team_id, priority_id, sla,
		help_topic_id, status, source, created_at, updated_at, duedate, type, creator_id)
		SELECT 'AAAA-' || g, 5, 1, 1, 1, 1, 1, 1, 1, now(), now(), now(), 0, 5 FROM generate_series(1, %d) g`, n))
	if _, err := Setup(testCtx(tb, time.Minute), f.cfg); err != nil {
		tb.Fatal(err)
	}
	cfg := f.cfg
	cfg.StatusInterval, cfg.MaxBatchChanges, cfg.MaxBatchBytes, cfg.QueueBytes = 0, 0, 0, 0
	cfg.SetDefaults() // the shipped bounds

	var start time.Time
	var (
		mu     sync.Mutex
		res    = largeTxnResult{}
		pos    change.Position
		errs   []string
		done   = make(chan struct{})
		reader *Reader
	)
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	h := HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		// waitFull: until the reader cannot push another chunk, or it has
		// stopped adding (the transaction's end is queued).
		q := reader.queue.Load()
		last, since := -1, time.Now()
		for ctx.Err() == nil {
			_, bytes := q.Size()
			if bytes+cfg.MaxBatchBytes > cfg.QueueBytes {
				res.queueFullSeen++
				break
			}
			if bytes != last {
				last, since = bytes, time.Now()
			} else if time.Since(since) > 300*time.Millisecond {
				break
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if res.chunks == 0 {
			pos = b.Pos
			res.firstChunk = time.Since(start)
		}
		if b.Pos != pos || b.Seq != res.chunks {
			fail("chunk %d: pos %s seq %d, want pos %s", res.chunks, b.Pos, b.Seq, pos)
		}
		if len(b.Changes) > cfg.MaxBatchChanges {
			fail("chunk %d has %d changes, more than max_batch_changes", b.Seq, len(b.Changes))
		}
		for _, c := range b.Changes {
			if c.Op != change.Update || c.Old == nil || c.New == nil || c.Table.Name != "tickets" {
				fail("chunk %d: %s on %s, old %v", b.Seq, c.Op, c.Table.Name, c.Old != nil)
				continue
			}
			if o, _ := c.Old.Int("isoverdue"); o != 0 {
				fail("old isoverdue %d", o)
			}
			if v, _ := c.New.Int("isoverdue"); v != 1 {
				fail("new isoverdue %d", v)
			}
		}
		res.rows += len(b.Changes)
		res.chunks++
		if b.Last {
			reader.Ack(b.Pos)
			close(done)
		}
		return nil
	})

	runtime.GC()
	heap := sampleHeap()
	start = time.Now()
	run := startReader(tb, cfg, h, ReaderOptions{})
	reader = run.reader
	run.waitConnected(tb)
	t0 := time.Now()
	f.db.Exec(tb, "UPDATE tickets SET isoverdue = 1")
	res.update = time.Since(t0)
	select {
	case <-done:
	case err := <-run.done:
		tb.Fatalf("Run returned before the transaction was through: %v", err)
	case <-time.After(20 * time.Minute):
		tb.Fatalf("the transaction was not through after 20 minutes (%d rows so far)", res.rows)
	}
	res.elapsed = time.Since(start)
	heap.finish()
	if err := run.stop(tb); err != nil {
		tb.Errorf("Run: %v", err)
	}
	res.peakInuse, res.peakAlloc = heap.peakInuse, heap.peakAlloc

	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		tb.Error(e)
	}
	if res.rows != n {
		tb.Errorf("%d changes handed over, want %d", res.rows, n)
	}
	return res
}

// TestLargeTransactionBoundedMemory: the one-statement UPDATE of a
// million ticket rows (over 5 GB as decoded rows) flows through with the
// heap under 100 MB, in chunks, the reader pausing while its queue is full.
// About 90 s under -race on two cores, run in parallel with the other long
// tests; -short takes 200,000 rows.
func TestLargeTransactionBoundedMemory(t *testing.T) {
	t.Parallel()
	rows := 1_000_000
	if testing.Short() {
		rows = 200_000
	}
	res := runLargeTxn(t, rows)
	t.Log(res)
	if res.peakInuse >= heapLimit {
		t.Errorf("peak HeapInuse %.1f MB, want under %d MB", float64(res.peakInuse)/(1<<20), heapLimit>>20)
	}
	if res.queueFullSeen == 0 {
		t.Error("the queue was never full: the test did not exercise back-pressure")
	}
}

// BenchmarkLargeTransaction: the million-row UPDATE, for the figures
// without -race: peak heap (MB) and rows per second.
func BenchmarkLargeTransaction(b *testing.B) {
	for b.Loop() {
		res := runLargeTxn(b, 1_000_000)
		b.ReportMetric(float64(res.peakInuse)/(1<<20), "peak-heapinuse-MB")
		b.ReportMetric(float64(res.peakAlloc)/(1<<20), "peak-heapalloc-MB")
		b.ReportMetric(float64(res.rows)/res.elapsed.Seconds(), "rows/s")
		if res.peakInuse >= heapLimit {
			b.Errorf("peak HeapInuse %.1f MB, want under %d MB", float64(res.peakInuse)/(1<<20), heapLimit>>20)
		}
	}
}

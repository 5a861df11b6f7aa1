package outbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// largeEvent is an event whose payload is size bytes of JSON, its content
// depending on seed.
func largeEvent(pos change.Position, idx uint32, ticket int64, size int, seed byte) mapping.Event {
	e := event(pos, idx, ticket, mapping.TicketReply)
	body := bytes.Repeat([]byte{'a' + seed%26}, size-len(`{"body":""}`))
	for i := 0; i < len(body); i += 997 { // not one repeated chunk: a chunk mixed up would show
		body[i] = '0' + byte(i/997%10)
	}
	e.Payload = fmt.Appendf(nil, `{"body":"%s"}`, body)
	return e
}

func payloadOf(t *testing.T, o *Outbox, endpoint string, k Key) []byte {
	t.Helper()
	page, err := o.Pending(endpoint, PendingQuery{After: prevKeyOf(k), Until: k, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 1 || page.Deliveries[0].Key != k {
		t.Fatalf("no pending %s: %+v", k, page.Deliveries)
	}
	return page.Deliveries[0].Event.Payload
}

func prevKeyOf(k Key) Key {
	if k.Index > 0 {
		return Key{Pos: k.Pos, Index: k.Index - 1}
	}
	return Key{Pos: k.Pos - 1, Index: ^uint32(0)}
}

func layoutOf(t *testing.T, o *Outbox) byte {
	t.Helper()
	var v byte
	_ = o.db.View(func(tx *bolt.Tx) error {
		v = tx.Bucket(bucketMeta).Get(keyVersion)[0]
		return nil
	})
	return v
}

// TestLargePayloadsRoundTripInChunks: payloads above payloadChunk are
// stored in chunks and read back byte for byte, small ones stay in their
// record; every chunk goes once the last endpoint is done; a file without
// a large event keeps the layout older versions read.
func TestLargePayloadsRoundTripInChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	d := newDurable()
	o := open(t, path, Options{NoSync: true, OnDurable: d.on},
		Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	mustAppend(t, o, 1, true, txn(1, 1))
	d.waitFor(t, 1)
	if v := layoutOf(t, o); v != layoutVersion {
		t.Fatalf("layout %d with small events only, want %d", v, layoutVersion)
	}
	sizes := []int{payloadChunk, payloadChunk + 1, 3*payloadChunk + 17, 5 << 20}
	var evs []mapping.Event
	for i, n := range sizes {
		evs = append(evs, largeEvent(2, uint32(i), int64(10+i), n, byte(i)))
	}
	mustAppend(t, o, 2, true, evs)
	d.waitFor(t, 2)
	if v := layoutOf(t, o); v != layoutChunked {
		t.Errorf("layout %d after a large event, want %d", v, layoutChunked)
	}
	wantChunks := 0
	for _, n := range sizes {
		if n > payloadChunk {
			wantChunks += (n + payloadChunk - 1) / payloadChunk
		}
	}
	if n := bucketLen(t, o, bucketPayloads); n != wantChunks {
		t.Errorf("%d chunks stored, want %d", n, wantChunks)
	}

	// Read back, after a reopen too.
	check := func(o *Outbox) {
		t.Helper()
		for i := range evs {
			k := KeyOf(&evs[i])
			if got := payloadOf(t, o, "a", k); !bytes.Equal(got, evs[i].Payload) {
				t.Errorf("payload %s: %d bytes read back, not the %d stored", k, len(got), len(evs[i].Payload))
			}
		}
	}
	check(o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, Options{NoSync: true, OnDurable: d.on},
		Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	check(o)

	// One endpoint done: the chunks stay for the other; both done: gone.
	deliverAll(t, o, "a")
	if n := bucketLen(t, o, bucketPayloads); n != wantChunks {
		t.Errorf("%d chunks after one endpoint delivered, want %d (the other still needs them)", n, wantChunks)
	}
	deliverAll(t, o, "b")
	if n := bucketLen(t, o, bucketPayloads); n != 0 {
		t.Errorf("%d chunks left after every endpoint delivered", n)
	}
	if n := bucketLen(t, o, bucketEvents); n != 0 {
		t.Errorf("%d events left after every endpoint delivered", n)
	}
}

// TestLargePayloadOfATransactionSentAgain: a chunk of an incomplete
// transaction stored, then the whole transaction sent again after a
// restart with the event mapped to another size: the record and its chunks
// are replaced whole (no stale chunk appended to the payload).
func TestLargePayloadOfATransactionSentAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	d := newDurable()
	o := open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	first := largeEvent(5, 0, 1, 9*payloadChunk, 1)
	mustAppend(t, o, 5, false, []mapping.Event{first})
	mustFlush(t, o)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	first = largeEvent(5, 0, 1, 4*payloadChunk+5, 2) // mapped again, smaller
	mustAppend(t, o, 5, false, []mapping.Event{first})
	mustAppend(t, o, 5, true, []mapping.Event{largeEvent(5, 1, 1, 2*payloadChunk, 3), event(5, 2, 1, mapping.TicketReply)})
	d.waitFor(t, 5)
	if got := payloadOf(t, o, "a", Key{Pos: 5}); !bytes.Equal(got, first.Payload) {
		t.Errorf("payload sent again: %d bytes read back, want the %d of the new mapping", len(got), len(first.Payload))
	}
	if n, want := bucketLen(t, o, bucketPayloads), 4+1+2; n != want {
		t.Errorf("%d chunks, want %d (the longer first mapping's are gone)", n, want)
	}
}

// TestDamagedChunksAreAnErrorNotACrash: a missing or extra chunk, or a
// record claiming another length, makes Pending fail with errCorrupt.
func TestDamagedChunksAreAnErrorNotACrash(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"missing chunk", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPayloads).Delete(chunkKey(nil, Key{Pos: 3}.bytes(), 1))
		}},
		{"extra chunk", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPayloads).Put(chunkKey(nil, Key{Pos: 3}.bytes(), 9), []byte("x"))
		}},
		{"short chunk", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPayloads).Put(chunkKey(nil, Key{Pos: 3}.bytes(), 0), []byte("x"))
		}},
		{"length too large", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			rec := append([]byte(nil), b.Get(Key{Pos: 3}.bytes())...)
			copy(rec[len(rec)-8:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			return b.Put(Key{Pos: 3}.bytes(), rec)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDurable()
			o := open(t, "", Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
			mustAppend(t, o, 3, true, []mapping.Event{largeEvent(3, 0, 1, 3*payloadChunk, 0)})
			d.waitFor(t, 3)
			if err := o.db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			_, err := o.Pending("a", PendingQuery{})
			if err == nil || !strings.Contains(err.Error(), errCorrupt.Error()) {
				t.Errorf("Pending = %v, want a corrupt record error", err)
			}
		})
	}
}

// TestPendingMaxBytesLeavesPayloadsOut: a page holds at most MaxBytes of
// payloads; the others come without payload and with their size, in key
// order all the same; MaxBytes < 0 leaves out every payload.
func TestPendingMaxBytesLeavesPayloadsOut(t *testing.T) {
	d := newDurable()
	o := open(t, "", Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	evs := []mapping.Event{
		largeEvent(4, 0, 1, 1000, 0),
		largeEvent(4, 1, 2, 3*payloadChunk, 1), // does not fit
		largeEvent(4, 2, 3, 1000, 2),           // fits after it
		largeEvent(4, 3, 4, 2000, 3),           // does not fit any more
	}
	mustAppend(t, o, 4, true, evs)
	d.waitFor(t, 4)
	for _, tc := range []struct {
		max  int
		want []bool // payload included
	}{
		{0, []bool{true, true, true, true}},
		{2500, []bool{true, false, true, false}},
		{-1, []bool{false, false, false, false}},
	} {
		page, err := o.Pending("a", PendingQuery{MaxBytes: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Deliveries) != len(evs) {
			t.Fatalf("MaxBytes %d: %d deliveries, want %d", tc.max, len(page.Deliveries), len(evs))
		}
		for i, dl := range page.Deliveries {
			if dl.Key != KeyOf(&evs[i]) || dl.Size != len(evs[i].Payload) || dl.Event.ID != evs[i].ID {
				t.Errorf("MaxBytes %d: delivery %d is %s of %d bytes, want %s of %d", tc.max, i, dl.Key, dl.Size,
					KeyOf(&evs[i]), len(evs[i].Payload))
			}
			if got := dl.Event.Payload != nil; got != tc.want[i] {
				t.Errorf("MaxBytes %d: delivery %d has its payload: %v, want %v", tc.max, i, got, tc.want[i])
			} else if got && !bytes.Equal(dl.Event.Payload, evs[i].Payload) {
				t.Errorf("MaxBytes %d: delivery %d: wrong payload", tc.max, i)
			}
		}
	}
}

// TestAppendBudgetAdmitsOneOversizedTransaction: store.queue_bytes bounds
// the appends waiting for the committer, yet an event larger than all of
// it is still stored (alone), and the appends queued behind it follow.
func TestAppendBudgetAdmitsOneOversizedTransaction(t *testing.T) {
	d := newDurable()
	o := open(t, "", Options{NoSync: true, OnDurable: d.on, MaxQueuedBytes: 1 << 20}, Subscription{Name: "a", Wants: all})
	release := blockCommitter(t, o)
	done := make(chan error, 1)
	go func() {
		err := o.Append(context.Background(), 1, true, []mapping.Event{largeEvent(1, 0, 1, 4<<20, 0)})
		if err == nil {
			err = o.Append(context.Background(), 2, true, txn(2, 1))
		}
		done <- err
	}()
	// The oversized one takes the whole budget: the small one waits.
	select {
	case err := <-done:
		t.Fatalf("both appends returned while the committer held the first (%v): the budget bounds nothing", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, 2)
	if keys := pendingKeys(t, o, "a"); len(keys) != 2 {
		t.Errorf("%d pending, want both events", len(keys))
	}
}

// mappedRSS is the resident memory of the store file's mapping (Linux).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatalf("reading smaps: %v", err)
	}
	var kb int64
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if !strings.HasSuffix(l, " "+path) {
			continue
		}
		for _, m := range lines[i+1:] {
			if v, ok := strings.CutPrefix(m, "Rss:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				kb += n
				break
			}
		}
	}
	return kb << 10
}

// TestReadingLargePayloadsLeavesTheMappingSmall: bbolt reads through a
// shared mapping of the file; the pages a backlog of large payloads is
// read (and deleted) through are dropped from the process, so its
// resident memory does not grow with the store.
func TestReadingLargePayloadsLeavesTheMappingSmall(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this test reads /proc/self/smaps: Linux only (running on %s)", runtime.GOOS)
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	d := newDurable()
	o := open(t, path, Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	const n, size = 12, 5 << 20 // 60 MB of payloads
	for i := range n {
		pos := change.Position(i + 1)
		mustAppend(t, o, pos, true, []mapping.Event{largeEvent(pos, 0, int64(i), size, byte(i))})
	}
	d.waitFor(t, n)
	// Small events too, read a page at a time: their pages are dropped
	// every dropMappedEvery bytes.
	for i := range 4000 {
		pos := change.Position(n + 1 + i)
		ev := largeEvent(pos, 0, 1, 8<<10, byte(i))
		mustAppend(t, o, pos, true, []mapping.Event{ev})
	}
	d.waitFor(t, n+4000)
	peak := mappedRSS(t, path)
	after := Key{}
	for {
		page, err := o.Pending("a", PendingQuery{After: after, Max: 64, MaxBytes: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range page.Deliveries {
			if dl.Event.Payload == nil {
				payloadOf(t, o, "a", dl.Key)
			}
		}
		peak = max(peak, mappedRSS(t, path))
		deliverOnly(o, "a", page.Deliveries)
		mustFlush(t, o)
		peak = max(peak, mappedRSS(t, path))
		if page.End {
			break
		}
		after = page.Last
	}
	t.Logf("resident pages of the store's mapping: at most %.1f MB while %d MB of payloads went through", float64(peak)/1e6, (n*size+4000*8<<10)>>20)
	if limit := int64(2*dropMappedEvery + 4<<20); peak > limit {
		t.Errorf("the store's mapping held %.1f MB resident, want at most %.1f MB", float64(peak)/1e6, float64(limit)/1e6)
	}
}

func deliverOnly(o *Outbox, endpoint string, dls []Delivery) {
	results := make([]Result, len(dls))
	for i, dl := range dls {
		results[i] = Result{Endpoint: endpoint, Key: dl.Key, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}}
	}
	o.Record(results...)
}

// TestPayloadProblems: the consistency check of chunked payloads finds a
// missing, an extra and an orphaned chunk, and nothing in a sound file.
func TestPayloadProblems(t *testing.T) {
	d := newDurable()
	o := open(t, "", Options{NoSync: true, OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	mustAppend(t, o, 3, true, []mapping.Event{largeEvent(3, 0, 1, 3*payloadChunk, 0), event(3, 1, 1, mapping.TicketReply),
		largeEvent(3, 2, 1, 2*payloadChunk+1, 1)})
	d.waitFor(t, 3)
	problems := func() []string {
		var ps []string
		_ = o.db.View(func(tx *bolt.Tx) error {
			payloadProblems(tx, func(p string) { ps = append(ps, p) })
			return nil
		})
		return ps
	}
	if ps := problems(); len(ps) != 0 {
		t.Fatalf("a sound store: %v", ps)
	}
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPayloads)
		if err := b.Delete(chunkKey(nil, Key{Pos: 3}.bytes(), 1)); err != nil { // missing
			return err
		}
		if err := b.Put(chunkKey(nil, Key{Pos: 3, Index: 1}.bytes(), 0), []byte("x")); err != nil { // not chunked
			return err
		}
		return b.Put(chunkKey(nil, Key{Pos: 9}.bytes(), 0), []byte("x")) // no event
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems(), "\n")
	for _, want := range []string{"event 0/3#0: chunk", "event 0/3#0: 131072 bytes in 2 chunks, its record says 196608",
		"belongs to event 0/3#1, whose payload is not chunked", "chunk 00000000000000090000000000000000 belongs to no event"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

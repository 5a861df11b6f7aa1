package daemon

import (
	"context"
	"testing"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
)

// TestIntakeBatchesInOrder: the daemon takes several transactions at once
// (cdc.BatchHandler), appends each in order, and skips those it appended
// before in this process, also when they come again among new ones (the
// stream restarted) and chunk by chunk.
func TestIntakeBatchesInOrder(t *testing.T) {
	d, err := New(context.Background(), offlineConfig(t), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	var h cdc.BatchHandler = intake{d}
	other := change.NewTable("public", "audit_log", []change.Column{{Name: "id", Type: "int8"}})
	row := &change.Row{Table: other, Values: []change.Value{{Kind: change.KindInt, Int: 1}}}
	b := func(pos change.Position, seq int, last bool) *change.Batch {
		return &change.Batch{Pos: pos, Seq: seq, Last: last,
			Changes: []change.Change{{Op: change.Insert, Table: other, New: row}}}
	}
	ctx := context.Background()
	type step struct {
		bs       []*change.Batch
		wantLast change.Position
		wantSeq  int
		wantDone bool
	}
	for i, s := range []step{
		{[]*change.Batch{b(10, 0, true), b(20, 0, false)}, 20, 0, false},
		// Again from 10 (a restart), with 20's next chunk and a new one.
		{[]*change.Batch{b(10, 0, true), b(20, 0, false), b(20, 1, true), b(30, 0, true)}, 30, 0, true},
		{[]*change.Batch{b(20, 1, true), b(30, 0, true)}, 30, 0, true},
		{[]*change.Batch{b(40, 0, true)}, 40, 0, true},
		// Only transactions appended before (the stream restarted from 20
		// and has not reached 40 again): nothing is appended.
		{[]*change.Batch{b(20, 1, true), b(30, 0, true)}, 40, 0, true},
	} {
		if err := h.HandleBatches(ctx, s.bs); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if l := d.last; l.pos != s.wantLast || l.seq != s.wantSeq || l.done != s.wantDone {
			t.Errorf("step %d: last appended %+v, want %v/%d done=%v", i, l, s.wantLast, s.wantSeq, s.wantDone)
		}
	}
	if err := d.ob.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.ob.Position(); got != 40 {
		t.Errorf("stored position %s, want 40", got)
	}
}

package daemon

import (
	"context"
	"testing"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
)

// TestIntakeBatchesInOrder: the daemon takes several transactions at once
// (cdc.BatchHandler) and appends each in order; those it appended before,
// resent among new ones after the stream restarted (a transaction in chunks
// from its first chunk), leave the stored position where it was.
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
		bs         []*change.Batch
		wantStored change.Position
	}
	for i, s := range []step{
		{[]*change.Batch{b(10, 0, true), b(20, 0, false)}, 10},
		// Again from 10 (a restart), with 20 whole and a new one.
		{[]*change.Batch{b(10, 0, true), b(20, 0, false), b(20, 1, true), b(30, 0, true)}, 30},
		{[]*change.Batch{b(40, 0, true)}, 40},
		// Only transactions appended before (the stream restarted from 20
		// and has not reached 40 again).
		{[]*change.Batch{b(20, 0, false), b(20, 1, true), b(30, 0, true)}, 40},
	} {
		if err := h.HandleBatches(ctx, s.bs); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if err := d.ob.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := d.ob.Position(); got != s.wantStored {
			t.Errorf("step %d: stored position %s, want %s", i, got, s.wantStored)
		}
	}
}

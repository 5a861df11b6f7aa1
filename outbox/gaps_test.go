package outbox

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSourceMarkAndGaps: the store's record of its source survives a
// reopen and is readable read-only; the confirmed mark only rises, and
// only for its own source; an accepted gap is kept in order and resets the
// mark to where the gap ends, which must be past the stored position.
func TestSourceMarkAndGaps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true})
	if m, err := o.SourceMark(); err != nil || m != (SourceMark{}) {
		t.Fatalf("a new store's mark: %+v, %v", m, err)
	}
	if err := o.RecordConfirmed(ctx, "sys/db", 500); err != nil {
		t.Fatal(err)
	}
	if err := o.RecordConfirmed(ctx, "sys/db", 400); err != nil {
		t.Fatal(err)
	}
	if m, _ := o.SourceMark(); m != (SourceMark{Source: "sys/db", Confirmed: 500}) {
		t.Errorf("after recording 500 then 400: %+v", m)
	}
	if err := o.RecordConfirmed(ctx, "other/db", 900); err == nil || !strings.Contains(err.Error(), "sys/db") {
		t.Errorf("recording for another source: %v", err)
	}
	mustAppend(t, o, 600, true, txn(600))
	mustFlush(t, o)

	if err := o.AcceptGap(ctx, Gap{From: 600, To: 550, Reason: "slot missing", Source: "sys/db"}); err == nil {
		t.Error("a gap ending before the stored position was accepted")
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, g := range []Gap{
		{From: 600, To: 1000, At: at, Reason: "slot missing", Source: "sys/db"},
		{From: 1000, To: 2000, At: at.Add(time.Hour), Reason: "another database", Source: "new/db"},
	} {
		if err := o.AcceptGap(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if m, _ := ro.SourceMark(); m != (SourceMark{Source: "new/db", Confirmed: 2000}) {
		t.Errorf("after the gaps, reopened: %+v", m)
	}
	gaps, err := ro.Gaps()
	if err != nil || len(gaps) != 2 || gaps[0].To != 1000 || gaps[1].Reason != "another database" ||
		!gaps[1].At.Equal(at.Add(time.Hour)) {
		t.Errorf("gaps: %+v, %v", gaps, err)
	}
	if err := ro.RecordConfirmed(ctx, "new/db", 3000); err == nil {
		t.Error("a read-only store recorded")
	}
}

package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/change"
)

// MySQL positions print as the sequence number, with the epoch once there
// is one, and read back; what is not one is refused.
func TestBinlogPositions(t *testing.T) {
	for _, p := range []change.Position{0, 1, 57, seqMask, 1<<epochShift | 3, 7<<epochShift | seqMask} {
		s := binlogPos(p)
		if got, err := parseBinlogPos(s); err != nil || got != p {
			t.Errorf("%d prints as %q, which reads as %d (%v)", p, s, got, err)
		}
	}
	if binlogPos(2<<epochShift|57) != "2:57" || binlogPos(57) != "57" {
		t.Errorf("2:57 prints as %q, 57 as %q", binlogPos(2<<epochShift|57), binlogPos(57))
	}
	for _, bad := range []string{"", "x", "1:", ":5", "70000:1", "1:281474976710656", "0/5"} {
		if _, err := parseBinlogPos(bad); err == nil {
			t.Errorf("%q read as a position", bad)
		}
	}
}

// The epoch handler puts the store's epoch into every batch it passes on,
// whichever way the reader hands them over, and refuses a sequence number
// that would reach into it.
func TestEpochHandler(t *testing.T) {
	var got []change.Position
	h := change.HandlerFunc(func(_ context.Context, b *change.Batch) error {
		got = append(got, b.Pos)
		return nil
	})
	e := &epochHandler{h: h, base: 2 << epochShift}
	if err := e.Handle(context.Background(), &change.Batch{Pos: 5}); err != nil {
		t.Fatal(err)
	}
	if err := e.HandleBatches(context.Background(), []*change.Batch{{Pos: 6}, {Pos: 7}}); err != nil {
		t.Fatal(err)
	}
	if want := []change.Position{2<<epochShift | 5, 2<<epochShift | 6, 2<<epochShift | 7}; len(got) != 3 || got[0] != want[0] ||
		got[1] != want[1] || got[2] != want[2] {
		t.Errorf("positions %v, want %v", got, want)
	}
	if err := e.Handle(context.Background(), &change.Batch{Pos: seqMask + 1}); err == nil {
		t.Error("a sequence number beyond 2^48 was passed on")
	}
}

// Readiness on the binlog's retention: at risk only when the file the
// stored position reads on from is not the active one and fewer than the
// margin's files come before it; a lost position is said once (by the
// stream when it says so).
func TestRetentionProblems(t *testing.T) {
	for _, tc := range []struct {
		r      binlog.Retention
		margin int
		risk   bool
	}{
		{binlog.Retention{Files: 1, FilesBefore: 0}, 1, false}, // the active file
		{binlog.Retention{Files: 3, FilesBefore: 2}, 5, false}, // the active file
		{binlog.Retention{Files: 3, FilesBefore: 0}, 1, true},
		{binlog.Retention{Files: 3, FilesBefore: 1}, 1, false},
		{binlog.Retention{Files: 5, FilesBefore: 1}, 2, true},
		{binlog.Retention{}, 1, false}, // not read yet
	} {
		if got := retentionAtRisk(tc.r, tc.margin); got != tc.risk {
			t.Errorf("%+v, margin %d: at risk %v, want %v", tc.r, tc.margin, got, tc.risk)
		}
	}
	risky := binlog.Retention{Stored: "0-1-9", Files: 3}
	if p := retentionProblems(risky, nil, nil, 1); len(p) != 1 || !strings.Contains(p[0], "0-1-9 is in binlog file 1 of 3") {
		t.Errorf("at risk: %q", p)
	}
	lost := &binlog.PositionLostError{Stored: "0-1-9", Reason: "purged"}
	if p := retentionProblems(binlog.Retention{}, lost, lost, 1); len(p) != 0 {
		t.Errorf("lost, and the stream says so: %q", p)
	}
	if p := retentionProblems(binlog.Retention{}, lost, nil, 1); len(p) != 1 || !strings.Contains(p[0], "0-1-9") {
		t.Errorf("lost, the stream not down (yet): %q", p)
	}
	if p := retentionProblems(binlog.Retention{}, errors.New("connection refused"), nil, 1); len(p) != 1 {
		t.Errorf("the server unreachable: %q", p)
	}
}

package outbox

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
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

// TestResumeTokenStoredWithPosition: a source's resume token is stored in
// the commit that stores its transaction's last chunk, and only then; a
// progress batch (no events) advances both; a transaction already stored
// changes neither; the token survives a reopen. A fresh store records its
// start once, and an accepted gap can say where to read on from.
func TestResumeTokenStoredWithPosition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{NoSync: true})
	resume := func(o *Outbox) (change.Position, string) {
		t.Helper()
		pos, tok, err := o.Resume()
		if err != nil {
			t.Fatal(err)
		}
		return pos, tok
	}
	if pos, tok := resume(o); pos != 0 || tok != "" {
		t.Fatalf("a new store: %s %q", pos, tok)
	}
	if err := o.RecordStart(ctx, "mariadb/helpdesk", "0-1-40"); err != nil {
		t.Fatal(err)
	}
	if pos, tok := resume(o); pos != 0 || tok != "0-1-40" {
		t.Errorf("after RecordStart: %s %q", pos, tok)
	}
	if err := o.RecordStart(ctx, "mariadb/helpdesk", "0-1-99"); err == nil {
		t.Error("a store that has a source recorded a second start")
	}

	steps := []struct {
		pos     change.Position
		last    bool
		token   string
		events  []mapping.Event
		wantPos change.Position
		wantTok string
	}{
		{41, false, "", txn(41, 1), 0, "0-1-40"},             // a chunk: nothing is done yet
		{41, true, "0-1-41", txn(41, 2), 41, "0-1-41"},       // its last chunk
		{42, true, "0-1-42", nil, 42, "0-1-42"},              // a progress batch
		{42, true, "0-1-42-again", txn(42, 3), 42, "0-1-42"}, // resent: skipped
		{43, true, "", txn(43, 4), 43, "0-1-42"},             // no token: kept
		{44, true, "0-1-44", txn(44, 5), 44, "0-1-44"},
	}
	for i, s := range steps {
		if err := o.AppendResume(ctx, s.pos, s.last, s.token, s.events); err != nil {
			t.Fatal(err)
		}
		mustFlush(t, o)
		if pos, tok := resume(o); pos != s.wantPos || tok != s.wantTok {
			t.Errorf("step %d: stored %s %q, want %s %q", i, pos, tok, s.wantPos, s.wantTok)
		}
	}
	if err := o.AcceptGap(ctx, Gap{From: 44, To: 1<<48 | 3, Reason: "server rebuilt", Source: "mariadb/helpdesk",
		Resume: "0-1-3"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if pos, tok := resume(ro); pos != 44 || tok != "0-1-3" {
		t.Errorf("after the gap, reopened: %s %q", pos, tok)
	}
	if gaps, _ := ro.Gaps(); len(gaps) != 1 || gaps[0].Resume != "0-1-3" {
		t.Errorf("gaps: %+v", gaps)
	}
	if m, _ := ro.SourceMark(); m.Confirmed != 1<<48|3 {
		t.Errorf("the mark after the gap: %+v", m)
	}
}

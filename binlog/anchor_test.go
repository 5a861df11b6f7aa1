package binlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestResetServerBeyondStored: a server reset (RESET MASTER) whose new
// history has gone past the stored GTID's sequence number is refused, not
// read from that number on. The token alone cannot tell: 0-1-6 is in the
// new binlog too; the anchor says the stored transaction was elsewhere.
func TestResetServerBeyondStored(t *testing.T) {
	db := testenv.MariaDB(t, testenv.Dedicated())
	cfg := testConfig(db)
	ctx := context.Background()
	for range 5 {
		mark(t, db)
	}
	run := startReader(t, cfg, "", nil)
	m := mark(t, db)
	txs := transactions(run.c.waitFor(t, "the marker", time.Minute, sawMarker(m)))
	last := txs[len(txs)-1]
	run.close(t)
	if last.Anchor == "" || !strings.Contains(last.Anchor, last.Resume) {
		t.Fatalf("the last transaction (%s) has no anchor: %q", last.Resume, last.Anchor)
	}
	stored := WithAnchor(last.Resume, last.Anchor)
	if TokenGTID(stored) != last.Resume {
		t.Errorf("TokenGTID(%q) = %q", stored, TokenGTID(stored))
	}
	// Before the reset the anchor holds: no false alarm, and the reader
	// resumes from it.
	if _, err := CheckRetention(ctx, cfg, stored); err != nil {
		t.Fatalf("CheckRetention(%s) before the reset: %v", stored, err)
	}
	again := startReader(t, cfg, stored, nil)
	m = mark(t, db)
	again.c.waitFor(t, "a marker read from the anchored token", time.Minute, sawMarker(m))
	again.close(t)

	db.Exec(t, "RESET MASTER")
	for range 3 * int(last.Pos) {
		mark(t, db)
	}
	_, err := CheckRetention(ctx, cfg, stored)
	var lost *PositionLostError
	if !errors.As(err, &lost) || !errors.Is(err, ErrPositionLost) || !strings.Contains(lost.Reason, "rebuilt or reset") {
		t.Fatalf("CheckRetention(%s) after RESET MASTER and %d transactions: %v; want the position lost", stored, 3*last.Pos, err)
	}
	second := startReader(t, cfg, stored, nil)
	if err := second.runErr(t, time.Minute); !errors.Is(err, ErrPositionLost) {
		t.Errorf("Run from %s after the reset: %v; want ErrPositionLost", stored, err)
	}
}

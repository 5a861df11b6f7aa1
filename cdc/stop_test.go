package cdc

import (
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestStopWakesAnIdleRead: a reader waiting for the server (nothing to
// stream) stops as soon as its context ends, not at its next status update
// (10 s here): reads are bounded by a socket deadline that cancelling moves
// into the past.
func TestStopWakesAnIdleRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	cfg := f.cfg
	cfg.StatusInterval = 10 * time.Second
	run := startReader(t, cfg, newRecorder(true), ReaderOptions{FinalAckWait: -1})
	run.waitConnected(t)
	time.Sleep(300 * time.Millisecond) // into a blocked read
	start := time.Now()
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %s after cancel; want well before the 10 s status interval", took)
	}
}

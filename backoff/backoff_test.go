package backoff

import (
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	for _, c := range []struct {
		attempt int
		lo, hi  time.Duration
		step    time.Duration // the un-jittered wait
	}{
		{1, time.Second, 10 * time.Second, time.Second},
		{2, time.Second, 10 * time.Second, 2 * time.Second},
		{4, time.Second, 10 * time.Second, 8 * time.Second},
		{5, time.Second, 10 * time.Second, 10 * time.Second}, // capped
		{1000, time.Second, 10 * time.Second, 10 * time.Second},
		{62, time.Hour, 24 * time.Hour, 24 * time.Hour}, // no overflow
		{0, 50 * time.Millisecond, time.Second, 50 * time.Millisecond},
		{3, 0, time.Second, time.Second}, // no minimum: the cap
		{1, time.Minute, time.Second, time.Second},
	} {
		for range 200 {
			got := Exp(c.attempt, c.lo, c.hi)
			if got < c.step/2 || got > c.step {
				t.Fatalf("Exp(%d, %v, %v) = %v, want within [%v, %v]", c.attempt, c.lo, c.hi, got, c.step/2, c.step)
			}
		}
	}
	if got := Exp(3, time.Second, 0); got != 0 {
		t.Errorf("Exp with no cap = %v, want 0", got)
	}
}

// TestExpReconnect: the replication reader's reconnect waits (250ms
// doubling to 30s) over many attempts.
func TestExpReconnect(t *testing.T) {
	lo, hi := 250*time.Millisecond, 30*time.Second
	for attempt := 1; attempt < 100; attempt++ {
		step := hi
		if attempt < 10 {
			step = min(hi, lo<<(attempt-1))
		}
		for range 20 {
			if d := Exp(attempt, lo, hi); d < step/2 || d > step {
				t.Fatalf("Exp(%d) = %s, want within [%s, %s]", attempt, d, step/2, step)
			}
		}
	}
}

func TestExpJitters(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[Exp(3, time.Second, time.Minute)] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 waits took only %d values: not jittered", len(seen))
	}
}

func TestSpread(t *testing.T) {
	d := 10 * time.Second
	lo, hi := d, d
	for range 1000 {
		got := Spread(d, 0.2)
		if got < 8*time.Second || got > 12*time.Second {
			t.Fatalf("Spread(10s, 0.2) = %v, want within 8s..12s", got)
		}
		lo, hi = min(lo, got), max(hi, got)
	}
	if lo > 9*time.Second || hi < 11*time.Second {
		t.Errorf("1000 spreads of 10s ±20%% stayed within %v..%v: not spread", lo, hi)
	}
	if got := Spread(0, 0.2); got != 0 {
		t.Errorf("Spread(0) = %v", got)
	}
	if got := Spread(-time.Second, 0.2); got != 0 {
		t.Errorf("Spread(-1s) = %v", got)
	}
	if got := Spread(d, 0); got != d {
		t.Errorf("Spread(10s, 0) = %v", got)
	}
}

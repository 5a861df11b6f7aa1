// Package backoff computes how long to wait before trying again: an
// exponential step from a minimum, capped, with random jitter so that many
// waiters (readers reconnecting, workers retrying) do not all come back at
// the same instant. Every retry loop of deskhook takes its waits from here.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is the wait before retry number attempt (1 for the first retry):
// lo·2^(attempt-1), capped at hi, then jittered to between half and all of
// that step ("equal jitter": never less than half the step, so a backoff
// still backs off, and never more than hi).
func Exp(attempt int, lo, hi time.Duration) time.Duration {
	if hi <= 0 {
		return 0
	}
	lo = max(min(lo, hi), 0)
	attempt = max(attempt, 1)
	d := hi
	if attempt < 63 {
		if s := lo << (attempt - 1); s > 0 && s < hi && s>>(attempt-1) == lo {
			d = s
		}
	}
	return d/2 + rand.N(d/2+1)
}

// Spread returns d scaled by a random factor between 1-f and 1+f (f is a
// fraction, e.g. 0.2 for ±20%): a configured delay keeps its size while
// retries of many events due at once spread out.
func Spread(d time.Duration, f float64) time.Duration {
	if d <= 0 {
		return 0
	}
	f = min(max(f, 0), 1)
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

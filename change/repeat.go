package change

import "time"

// Both sources (and the daemon above them) say a failure that keeps
// repeating once, not on every retry: an operator must see it, and must
// not have to dig it out of a log it floods.

// RepeatEvery is how often a failure that keeps repeating is logged again
// at its level (in between, at DEBUG).
const RepeatEvery = 10 * time.Minute

// RepeatFilter tells a failure worth logging from the same one again: each
// failure is said once, then again only every RepeatEvery while it lasts.
// The zero value is ready; reset it (to the zero value) once the failure is
// over.
type RepeatFilter struct {
	last string
	at   time.Time
}

// Fresh reports whether err should be logged at its level now.
func (f *RepeatFilter) Fresh(err error, now time.Time) bool {
	msg := err.Error()
	if msg == f.last && now.Sub(f.at) < RepeatEvery {
		return false
	}
	f.last, f.at = msg, now
	return true
}

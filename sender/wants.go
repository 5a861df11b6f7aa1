package sender

import "github.com/deskhook/deskhook/mapping"

// Wants returns the predicate saying whether endpoint e gets an event (its
// events list and filters), as its subscription applies it: for callers
// that select events on its behalf without a running sender (a re-send by
// ticket or time range from the CLI while no daemon runs). e must have its
// defaults set.
func Wants(e Endpoint) func(*mapping.Event) bool { return wants(e) }

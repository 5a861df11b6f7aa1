package sender

import (
	"strings"
	"time"
	"unicode"

	"github.com/deskhook/deskhook/outbox"
)

// What the operator hears of an endpoint's failures at the default log
// level: its first failure at once (WARN: the status or error, when it is
// tried again), then one summary per failure_log_interval while failures go
// on (WARN: how many, the last one, the oldest pending event), and its
// recovery (INFO). Each attempt's own line stays at DEBUG: with the default
// schedule the first line, the summaries and the dead letters say enough,
// and thousands of failing events do not flood the log. A failure that
// comes within an interval of the last line (an endpoint that flaps) waits
// for the next summary.

// failureLog is an endpoint's failure spell, as its dispatcher sees it.
type failureLog struct {
	failing  bool
	since    time.Time // first failure of the spell
	failures int       // failures in the spell
	unlogged int       // failures no line has counted yet
	heard    bool      // a line about this spell was logged
	lastLine time.Time
	last     outbox.Attempt
}

// failed notes a failed attempt; retryIn is when the event is tried again
// (negative: it became a dead letter).
func (ep *endpoint) failed(a outbox.Attempt, retryIn time.Duration) {
	f := &ep.f
	now := time.Now()
	if !f.failing {
		f.failing, f.since, f.failures, f.heard = true, now, 0, false
	}
	f.failures++
	f.unlogged++
	f.last = a
	if !f.lastLine.IsZero() && now.Sub(f.lastLine) < ep.failureLogInterval {
		return
	}
	if !f.heard {
		attrs := attemptAttrs(a)
		if retryIn >= 0 {
			attrs = append(attrs, "retry_in", retryIn.Round(time.Millisecond))
		}
		if f.unlogged > 1 {
			attrs = append(attrs, "failures", f.unlogged)
		}
		ep.log.Warn("endpoint failing: a delivery attempt failed; events are retried on the endpoint's schedule", attrs...)
	} else {
		attrs := append([]any{"failures", f.unlogged, "failing_for", now.Sub(f.since).Round(time.Second)},
			attemptAttrs(a)...)
		ep.log.Warn("endpoint still failing", append(attrs, ep.queueAttrs(now)...)...)
	}
	f.heard, f.lastLine, f.unlogged = true, now, 0
}

// succeeded notes a delivery: the end of a failure spell, if there was
// one.
func (ep *endpoint) succeeded() {
	f := &ep.f
	if !f.failing {
		return
	}
	f.failing = false
	if f.heard {
		now := time.Now()
		ep.log.Info("endpoint recovered: deliveries succeed again",
			"failing_for", now.Sub(f.since).Round(time.Second), "failures", f.failures)
		f.lastLine = now
	}
}

// queueAttrs describe the endpoint's queue in the store.
func (ep *endpoint) queueAttrs(now time.Time) []any {
	eps, err := ep.s.ob.Endpoints()
	if err != nil {
		return nil
	}
	for _, e := range eps {
		if e.Name != ep.name {
			continue
		}
		attrs := []any{"pending", e.Depth}
		if !e.Oldest.IsZero() {
			attrs = append(attrs, "oldest_pending", now.Sub(e.Oldest).Round(time.Second))
		}
		if e.DeadLetters > 0 {
			attrs = append(attrs, "dead_letters", e.DeadLetters)
		}
		return attrs
	}
	return nil
}

// attemptAttrs describe a failed attempt: the HTTP status and an excerpt
// of the answer, or the transport error. The log's scrubber removes the
// configured secrets from the excerpt, should a receiver echo them.
func attemptAttrs(a outbox.Attempt) []any {
	var attrs []any
	if a.Status != 0 {
		attrs = append(attrs, "status", a.Status)
	}
	if a.Error != "" {
		attrs = append(attrs, "error", a.Error)
	}
	if a.Response != "" {
		attrs = append(attrs, "response", excerpt(a.Response, maxExcerpt))
	}
	return attrs
}

// maxExcerpt bounds the response text quoted in a log line.
const maxExcerpt = 200

// excerpt is the start of a response body for a log line: valid UTF-8 on
// one line, control characters and runs of white space as one space, at
// most max bytes (then "…").
func excerpt(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+len(string(r)) > max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

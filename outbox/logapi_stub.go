package outbox

import (
	"context"
	"errors"
)

// Temporary: the delivery log's methods, declared so that callers can be
// written against them; implemented in the commits that follow.

var errLogPending = errors.New("outbox: the delivery log is not implemented yet")

// Log lists log entries matching q, newest first.
func (o *Outbox) Log(q LogQuery) (LogPage, error) { return LogPage{}, errLogPending }

// LogStats says how large the log is and the limits in force.
func (o *Outbox) LogStats() (LogStats, error) { return LogStats{}, errLogPending }

// Event returns one stored event by id, with its endpoints and attempts.
func (o *Outbox) Event(id string) (StoredEvent, error) { return StoredEvent{}, errLogPending }

// Events lists stored events by ticket and/or commit time, newest first.
func (o *Outbox) Events(q EventQuery) (EventPage, error) { return EventPage{}, errLogPending }

// Resend queues the selected stored events again for one endpoint.
func (o *Outbox) Resend(ctx context.Context, sel ResendSelection, endpoint string) (ResendResult, error) {
	return ResendResult{}, errLogPending
}

// SetLogLimits changes the log's limits (a reload).
func (o *Outbox) SetLogLimits(l LogLimits) {}

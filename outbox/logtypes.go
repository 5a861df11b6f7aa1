package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deskhook/deskhook/mapping"
)

// The delivery log's public shapes: what Log, Event, Events and Resend
// take and return (docs/delivery-log.md describes them for operators).

// LogEntry is one delivery attempt as the delivery log keeps it.
type LogEntry struct {
	// Cursor names the entry's place in the log: a LogQuery with this
	// Cursor continues with the entries older than it.
	Cursor    string    `json:"cursor"`
	At        time.Time `json:"at"` // when the attempt started
	Endpoint  string    `json:"endpoint"`
	EventID   string    `json:"event_id"` // sent as webhook-id
	EventType string    `json:"event_type"`
	TicketID  int64     `json:"ticket_id"`
	Key       Key       `json:"-"`
	// Attempt is the attempt's number for this delivery, from 1. A
	// re-sent or replayed event starts again at 1.
	Attempt int     `json:"attempt"`
	Outcome Outcome `json:"outcome"` // delivered, retry or dead
	// Status is the HTTP status; 0 when no answer came (Error says why).
	Status   int           `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Response is the start of the answer's body (at most
	// MaxLogResponse bytes), with the configured secrets replaced by the
	// sender before it was stored.
	Response string `json:"response,omitempty"`
	// NextAt is when the next attempt was due (Outcome Retry).
	NextAt time.Time `json:"next_at,omitzero"`
}

// MaxLogResponse bounds the response excerpt a log entry keeps.
const MaxLogResponse = 1 << 10

// LogQuery selects log entries, newest first. Zero fields match
// everything; the filters combine (AND).
type LogQuery struct {
	Endpoint  string
	TicketID  int64
	EventID   string
	EventType string
	// Outcomes keeps entries with any of these outcomes (none: all).
	// ParseOutcomes reads "delivered", "retry", "dead" and "failed"
	// (retry and dead).
	Outcomes []Outcome
	// Since and Until bound the attempt's start: Since ≤ At < Until.
	Since, Until time.Time
	// Cursor continues a listing: entries older than the one it names
	// (LogPage.Next, LogEntry.Cursor).
	Cursor string
	// Limit is the most entries returned (default 50, at most 1000).
	Limit int
}

// LogPage is one page of a log listing.
type LogPage struct {
	Entries []LogEntry `json:"entries"`
	// Next is the cursor of the next (older) page; empty when the query's
	// range is exhausted. A page may hold fewer than Limit entries and
	// still have a Next: the query stopped after looking at a bounded
	// number of index entries that did not match its other filters
	// (Scanned), so that no request runs long. Ask again with Next.
	Next string `json:"next,omitempty"`
	// Index names the index that answered: "event", "ticket",
	// "endpoint", "type", "outcome" or "time" (docs/delivery-log.md).
	Index   string `json:"index"`
	Scanned int    `json:"scanned"`
}

// LogLimits are the delivery log's settings (Options.Log, SetLogLimits).
type LogLimits struct {
	// Retention is how long entries are kept. Zero: no entry is recorded
	// and none is pruned (the CLI's Outbox, which leaves the log to the
	// daemon). Negative: no entry is recorded and those in the store are
	// pruned (the log switched off).
	Retention time.Duration
	// MaxBytes bounds the log's size (LogStats.Bytes): the oldest entries
	// are pruned while it is larger. 0: no bound.
	MaxBytes int64
	// PruneInterval is how often the pruner looks for expired entries
	// (default 1m); it also runs when a commit takes the log over MaxBytes.
	PruneInterval time.Duration
}

// LogStats is the log's size, as retention sees it.
type LogStats struct {
	Entries int64 `json:"entries"`
	// Bytes counts the entries, their index keys and the bodies of the
	// events they point at (each once): what delivery_log.max_bytes bounds.
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest,omitzero"`
	// Retention and MaxBytes are the limits in force (0: none; a zero
	// Retention means no new entries are recorded).
	Retention time.Duration `json:"retention_ns"`
	MaxBytes  int64         `json:"max_bytes"`
}

// StoredEvent is one stored event: its body as stored (every delivery
// sends these bytes), where each endpoint stands with it, and its
// attempts from the log.
type StoredEvent struct {
	Key        Key             `json:"-"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	TicketID   int64           `json:"ticket_id"`
	DeptID     int64           `json:"dept_id,omitempty"`
	SourceID   int64           `json:"source_id,omitempty"`
	CommitTime time.Time       `json:"commit_time"`
	Payload    json.RawMessage `json:"payload"` // canonical JSON; endpoints render it to their format
	// Endpoints lists every endpoint that holds the event (pending, dead)
	// or appears in its attempts, by name.
	Endpoints []EventDelivery `json:"endpoints"`
	// Attempts are the event's log entries, newest first (at most
	// MaxEventAttempts).
	Attempts []LogEntry `json:"attempts"`
}

// MaxEventAttempts bounds the attempts StoredEvent lists.
const MaxEventAttempts = 500

// EventDelivery is where one endpoint stands with an event.
type EventDelivery struct {
	Endpoint string `json:"endpoint"`
	// State is "pending" (queued, Next says when it is due), "dead" (a
	// dead letter since DiedAt), "delivered" (its last attempt in the log
	// succeeded) or "done" (neither queued nor dead, its last attempt
	// failed: a dead letter dropped, an endpoint forgotten).
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`           // attempts of the current pending entry or dead letter
	Next     time.Time `json:"next_at,omitzero"`   // pending: when due (zero: now)
	DiedAt   time.Time `json:"died_at,omitzero"`   // dead
	LastAt   time.Time `json:"last_at,omitzero"`   // its last attempt in the log
	Orphaned bool      `json:"orphaned,omitempty"` // the endpoint is not in the configuration
}

// EventQuery selects stored events, newest first: by ticket, by commit
// time (From ≤ t < To), or both.
type EventQuery struct {
	TicketID int64
	From, To time.Time
	Cursor   string // EventPage.Next
	Limit    int    // default 50, at most 1000
}

// EventSummary is a stored event in a listing, without its body.
type EventSummary struct {
	Key        Key       `json:"-"`
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	TicketID   int64     `json:"ticket_id"`
	CommitTime time.Time `json:"commit_time"`
	Size       int       `json:"size_bytes"`
}

// EventPage is one page of an event listing.
type EventPage struct {
	Events []EventSummary `json:"events"`
	Next   string         `json:"next,omitempty"`
}

// ResendSelection selects stored events to send again. At least one of
// ID, TicketID, From and To must be set (Resend refuses an empty
// selection); they combine (AND).
type ResendSelection struct {
	ID       string `json:"id,omitempty"`
	TicketID int64  `json:"ticket,omitempty"`
	// From and To bound the event's commit time: From ≤ t < To.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Wants, for a selection by ticket or time, keeps only the events the
	// endpoint gets (its events and filters). Nil: the subscription's
	// Wants when the endpoint is subscribed (the daemon's Outbox), else
	// every event. A selection by id takes the event whatever it is.
	Wants func(*mapping.Event) bool `json:"-"`
}

// Empty reports whether s selects nothing in particular (every event).
func (s ResendSelection) Empty() bool {
	return s.ID == "" && s.TicketID == 0 && s.From.IsZero() && s.To.IsZero()
}

// ResendResult says what Resend did with the events it selected.
type ResendResult struct {
	Events int `json:"events"` // stored events selected
	// Queued were neither pending nor dead at the endpoint (delivered
	// before, or never sent to it): queued again with no attempts.
	Queued int `json:"queued"`
	// Due were pending already: due now instead of at their next retry.
	Due int `json:"due"`
	// Revived were dead letters: queued again with no attempts, as
	// `dlq replay` does.
	Revived int `json:"revived"`
}

// MaxResend bounds the events one Resend selects: a larger selection is
// refused (narrow it, or resend in parts).
const MaxResend = 10000

// ErrNotSubscribed is wrapped by Resend's error for an endpoint that is
// registered but not in the configuration (orphaned): nothing would be
// sent to it.
var ErrNotSubscribed = errors.New("is not in the configuration (orphaned): nothing is sent to it")

// ErrTooMany is wrapped by Resend's error for a selection of more than
// MaxResend events.
var ErrTooMany = errors.New("selects too many events")

// ErrBadCursor is wrapped by Log's and Events' errors for a cursor they
// did not hand out.
var ErrBadCursor = errors.New("not a cursor of this listing")

// MarshalText writes an outcome as its name.
func (oc Outcome) MarshalText() ([]byte, error) {
	switch oc {
	case Delivered, Retry, Dead:
		return []byte(oc.String()), nil
	}
	return nil, fmt.Errorf("outbox: outcome %d has no name", uint8(oc))
}

// UnmarshalText reads an outcome's name.
func (oc *Outcome) UnmarshalText(b []byte) error {
	for _, o := range []Outcome{Delivered, Retry, Dead} {
		if string(b) == o.String() {
			*oc = o
			return nil
		}
	}
	return fmt.Errorf("outbox: unknown outcome %q (delivered, retry, dead)", b)
}

// ParseOutcomes reads a comma-separated list of outcomes: "delivered",
// "retry", "dead", and "failed" for retry and dead. Empty: none (all).
func ParseOutcomes(s string) ([]Outcome, error) {
	var out []Outcome
	add := func(o Outcome) {
		for _, x := range out {
			if x == o {
				return
			}
		}
		out = append(out, o)
	}
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "failed":
			add(Retry)
			add(Dead)
		default:
			var o Outcome
			if err := o.UnmarshalText([]byte(f)); err != nil {
				return nil, fmt.Errorf("outcome %q: want delivered, retry, dead or failed", f)
			}
			add(o)
		}
	}
	return out, nil
}

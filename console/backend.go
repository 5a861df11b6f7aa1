package console

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// Backend is what the console needs from the daemon; the daemon implements
// it (daemon/console.go). Every string it hands over may still hold a
// secret (an error quoting a header, a response echoing one): the console
// scrubs whole pages of Options.Secrets before they leave.
type Backend interface {
	// Overview is the source, the store and readiness, as of now.
	Overview(ctx context.Context) (Overview, error)
	// Endpoints lists every endpoint the configuration names or the store
	// keeps (orphaned ones too), by name.
	Endpoints(ctx context.Context) ([]Endpoint, error)
	// SetEnabled enables or disables deliveries to an endpoint, as
	// `deskhook endpoints enable|disable` do.
	SetEnabled(ctx context.Context, endpoint string, enabled bool) error

	// The dead letters, as `deskhook dlq` lists, replays and drops them.
	DeadLetters(ctx context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error)
	Replay(ctx context.Context, f outbox.DeadFilter) (int, error)
	Drop(ctx context.Context, f outbox.DeadFilter) (int, error)

	// The delivery log: its entries by the log's indexes with cursor
	// pagination (a page reads a bounded number of index entries,
	// whatever the log's size), one stored event with its attempts, and
	// re-sending stored events to an endpoint with their webhook-id and
	// body.
	Log(ctx context.Context, q outbox.LogQuery) (outbox.LogPage, error)
	Event(ctx context.Context, id string) (outbox.StoredEvent, error)
	Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error)

	// Counters reads the running totals the overview's charts are drawn
	// from; the console samples them (Console.Run).
	Counters() Counters
}

// Overview is the top of the console's first page.
type Overview struct {
	Version  string
	Ready    bool
	Problems []string // why the daemon is not ready (/readyz's reasons)
	// Source and Store are label/value pairs the daemon chooses for its
	// source (position, lag, retained WAL or binlog margin) and its store.
	Source []Fact
	Store  []Fact
}

// Fact is one labelled value; Warn marks one that needs attention.
type Fact struct {
	Label, Value string
	Warn         bool
}

// Endpoint is one endpoint as the endpoints page shows it.
type Endpoint struct {
	Name string
	URL  string // without credentials
	// Configured: the configuration names it. Orphaned: only the store
	// does (nothing is sent to it, its queue and dead letters are kept).
	Configured    bool
	Orphaned      bool
	OrphanedSince time.Time
	// PausedInConfig: `enabled: false` in the configuration; only a
	// config change resumes it.
	PausedInConfig bool
	// Disabled in the store (410 Gone or an operator): Enable resumes it.
	Disabled       bool
	DisabledBy     string
	DisabledReason string

	Pending       int64
	OldestPending time.Duration // age of the oldest pending event; 0 when none
	DeadLetters   int64
	LastSuccess   time.Time
	LastError     string
	LastErrorAt   time.Time

	// What requests to it look like, for the event page: its body format,
	// whether requests are signed, the names of its configured headers
	// (never their values) and the User-Agent.
	Format      string
	Signed      bool
	HeaderNames []string
	UserAgent   string
}

// State is the endpoint's state in a word.
func (e Endpoint) State() string {
	switch {
	case e.Orphaned:
		return "orphaned"
	case e.PausedInConfig:
		return "paused"
	case e.Disabled:
		return "disabled"
	}
	return "enabled"
}

// Counters are running totals since the daemon started.
type Counters struct {
	EventsStored float64 // events written to the store
	Attempts     float64 // delivery attempts
	// AttemptSeconds is the attempts' durations as a cumulative histogram
	// (bucket upper bounds in seconds, ascending; the last may be +Inf).
	AttemptSeconds []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

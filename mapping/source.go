package mapping

import (
	"context"

	"github.com/deskhook/deskhook/change"
)

// Source reads rows the change stream has not shown the mapper (rows older
// than the stream, or evicted from the state), by primary key. The PostgreSQL
// implementation is cdc.Lookup. Values must be decoded exactly as the stream
// decodes them, so that a fetched row renders like a streamed one.
//
// What a Source returns is the row as it is now, which may be later than the
// transaction being mapped; the stream's own changes override it as they
// arrive.
type Source interface {
	// Rows returns the rows of table whose "id" is one of ids, in any order;
	// ids with no row are left out.
	Rows(ctx context.Context, table string, ids []int64) ([]*change.Row, error)
	// TicketFacts returns what the ticket appends and first_thread need
	// about each ticket's threads and related rows, for every id asked
	// (zero facts for a ticket without threads). When maxThreadID > 0, only
	// threads with an id up to it count: the mapper passes the highest
	// thread id the stream has delivered, so that facts read late (a ticket
	// first met long after its threads were written, or state rebuilt after
	// a restart) leave out threads the stream has yet to deliver, and match
	// the commit being mapped as closely as the source allows.
	TicketFacts(ctx context.Context, ticketIDs []int64, maxThreadID int64) (map[int64]TicketFacts, error)
}

// TicketFacts is what a ticket's payload needs beyond its own row.
type TicketFacts struct {
	// FirstThread is the ticket's first non-internal thread (lowest id,
	// is_internal = 0); nil when there is none.
	FirstThread *change.Row
	// ThreadCount counts the non-internal threads.
	ThreadCount int64
	// LastPoster is the poster of the last (highest id) non-internal thread;
	// "" when there is none.
	LastPoster string
	// MaxThreadID is the highest id among all the ticket's threads, internal
	// ones included (0 when none): threads the stream delivers later with an
	// id at or below it are already counted.
	MaxThreadID int64
	// CollaboratorCount counts the ticket's collaborators whose user has
	// an email (as Faveo counts them).
	CollaboratorCount int64
	// AttachmentCount counts the attachments of the ticket's threads.
	AttachmentCount int64
}

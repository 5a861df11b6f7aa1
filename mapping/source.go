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
	// about each ticket's threads and related rows, for every ticket asked
	// (zero facts for a ticket without threads), read in one snapshot. Each
	// query bounds the threads that count for its ticket: the mapper passes
	// the highest thread id the stream had delivered by the transaction
	// that needs the facts, so that facts read late (a ticket first met long
	// after its threads were written, state rebuilt after a restart, or
	// facts read ahead for several transactions at once) leave out threads
	// the stream has yet to deliver, and match the commit being mapped as
	// closely as the source allows. Ticket ids are distinct.
	TicketFacts(ctx context.Context, qs []FactsQuery) (map[int64]TicketFacts, error)
}

// FactsQuery asks for one ticket's facts.
type FactsQuery struct {
	TicketID int64
	// MaxThreadID > 0 counts only the threads with an id up to it
	// (collaborators, which have no such order, are all counted).
	MaxThreadID int64
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

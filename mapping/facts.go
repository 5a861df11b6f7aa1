package mapping

import (
	"context"
	"fmt"

	"github.com/deskhook/deskhook/change"
)

// What a ticket's payload needs beyond the rows the stream shows, in
// Faveo's terms (its Tickets model): thread_count counts the public
// threads (is_internal 0), first_thread is the first public one,
// collaborator_count counts the collaborators whose user has an email,
// attachment_count counts the attachments of every thread, internal ones
// too. The mapper reads them (for tickets it first meets mid-stream, or
// whose facts a change made unknown) as one Aggregate per round, with the
// threads bounded by the highest thread id the stream had delivered by the
// transaction that needs them (FactsQuery.MaxThreadID): facts read late
// leave out threads the stream has yet to deliver.

// FactsQuery asks for one ticket's facts (ReadTicketFacts).
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

// The facts Aggregate's parts and values.
const (
	factsThreads       = iota // of the tickets' threads, up to the bound:
	factsCollaborators        // the collaborators whose user has an email
	factsAttachments          // the attachments of the threads up to the bound

	threadsPublic  = 0 // count of public threads
	threadsMaxID   = 1 // highest id of all threads
	threadsFirstID = 2 // lowest id of public threads
	threadsLastID  = 3 // highest id of public threads

	fetchFirst  = 0 // the first public thread, all columns
	fetchPoster = 1 // the last public thread's poster
)

// factsAggregate is the read of qs' facts from the tables t.
func factsAggregate(t Tables, qs []FactsQuery) Aggregate {
	keys := make([]Key, len(qs))
	for i, q := range qs {
		keys[i] = Key{Value: q.TicketID, Bound: max(q.MaxThreadID, 0)}
	}
	public := []Cond{{Col: Col{Name: "is_internal"}, Test: IsZero}}
	id := Col{Name: "id"}
	return Aggregate{
		Keys: keys,
		Parts: []Part{
			factsThreads: {Table: t.Threads, Group: Col{Name: "ticket_id"}, Bound: id, Values: []Value{
				threadsPublic:  {Func: Count, Where: public},
				threadsMaxID:   {Func: Max, Col: id},
				threadsFirstID: {Func: Min, Col: id, Where: public},
				threadsLastID:  {Func: Max, Col: id, Where: public},
			}},
			factsCollaborators: {Table: t.Collaborators, Join: &Join{Table: t.Users, Ref: "user_id"},
				Group: Col{Name: "ticket_id"}, Values: []Value{
					{Func: Count, Where: []Cond{{Col: Col{Name: "email", Joined: true}, Test: NotEmpty}}},
				}},
			factsAttachments: {Table: t.Attachments, Join: &Join{Table: t.Threads, Ref: "thread_id"},
				Group: Col{Name: "ticket_id", Joined: true}, Bound: Col{Name: "id", Joined: true},
				Values: []Value{{Func: Count}}},
		},
		Fetch: []Fetch{
			fetchFirst:  {Table: t.Threads, Part: factsThreads, Value: threadsFirstID},
			fetchPoster: {Table: t.Threads, Part: factsThreads, Value: threadsLastID, Columns: []string{"poster"}},
		},
	}
}

// ReadTicketFacts reads the facts of the tickets qs asks about from src,
// in one Aggregate (one snapshot), for the tables t. A ticket asked twice
// is read once, for its first query; a ticket without threads gets zero
// facts.
func ReadTicketFacts(ctx context.Context, src Source, t Tables, qs []FactsQuery) (map[int64]TicketFacts, error) {
	out := make(map[int64]TicketFacts, len(qs))
	uniq := qs[:0:0]
	for _, q := range qs {
		if _, dup := out[q.TicketID]; dup {
			continue
		}
		out[q.TicketID] = TicketFacts{}
		uniq = append(uniq, q)
	}
	if len(uniq) == 0 {
		return out, nil
	}
	rows, err := src.Aggregate(ctx, factsAggregate(t, uniq))
	if err != nil {
		return nil, err
	}
	for _, q := range uniq {
		r, ok := rows[q.TicketID]
		if !ok {
			continue
		}
		if len(r.Values) != 3 || len(r.Values[factsThreads]) != 4 || len(r.Values[factsCollaborators]) != 1 ||
			len(r.Values[factsAttachments]) != 1 || len(r.Rows) != 2 {
			return nil, fmt.Errorf("mapping: the source answered the facts of ticket %d in another shape", q.TicketID)
		}
		th := r.Values[factsThreads]
		f := TicketFacts{ThreadCount: th[threadsPublic], MaxThreadID: th[threadsMaxID],
			CollaboratorCount: r.Values[factsCollaborators][0], AttachmentCount: r.Values[factsAttachments][0],
			FirstThread: r.Rows[fetchFirst]}
		if p := r.Rows[fetchPoster]; p != nil {
			f.LastPoster = p.Text("poster")
		}
		out[q.TicketID] = f
	}
	return out, nil
}

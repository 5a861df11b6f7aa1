package mapping

import (
	"github.com/deskhook/deskhook/change"
)

// The state keeps, for each entity a payload can show, what the payload
// needs, already rendered as canonical JSON members: rows are rendered once
// when they change rather than for every event that shows them. Every entry
// is either what the stream last said about the row, or what the Source
// said when the stream had said nothing; a change the stream delivers always
// replaces it, so the state is never stale for anything the stream changed.
// Thread facts (counts, first thread, last poster) are kept from thread
// inserts; a thread update or delete whose effect on them the mapper cannot
// compute (no old row) makes them unknown, to be read again when needed.
// Collaborators and attachments are not in the stream: their counts are as
// of the last read of the ticket's facts.

// Tracked tickets columns: their values decide the update events.
const (
	colStatus = iota
	colDept
	colAssignedTo
	colTeam
	colUser
	colDueDate
	nTracked
)

var trackedColumns = [nTracked]string{"status", "dept_id", "assigned_to", "team_id", "user_id", "duedate"}

// shown is a value as a payload shows it; ok is false for NULL.
type shown struct {
	s  string
	ok bool
}

// ticketState is what the mapper knows about one ticket.
type ticketState struct {
	id int64

	// members is the tickets row rendered (nil until the row is known).
	members []byte
	// rowKnown: members and the fields below describe the current row.
	rowKnown bool
	// notFound: the source has no such ticket (deleted since); its events
	// are dropped.
	notFound bool
	// fromSource: the row was read from the source, so it is as of that
	// read and cannot serve as the "old" side of an update.
	fromSource bool
	tracked    [nTracked]shown
	userID     int64 // 0: none
	statusID   int64
	deptID     int64
	sourceID   int64
	teamID     int64
	// deleted: a DELETE of the row was seen; events still pending for it in
	// the same chunk are dropped.
	deleted bool

	// factsGen: the thread facts below are current when it equals the
	// Mapper's factsGen (0: unknown). A ticket inserted in the stream starts
	// with current (empty) facts; one first met in an UPDATE has none until
	// they are read from the source. A thread change the mapper cannot
	// apply makes them unknown: for one ticket by zeroing this, for every
	// ticket at once by moving the Mapper's factsGen on.
	factsGen      uint64
	firstThreadID int64
	firstThread   []byte // rendered object of the first thread
	threadCount   int64
	lastPoster    string
	// lastPublicID is the id of the public thread lastPoster comes from,
	// when the stream showed it (0: unknown, e.g. facts read from the
	// source).
	lastPublicID int64
	// maxThreadID is the highest thread id counted: a thread at or below
	// it is not counted again (a redelivered transaction, or a thread the
	// source already counted).
	maxThreadID   int64
	collaborators int64
	attachments   int64

	encryptedID string // computed once
}

// setRow replaces the ticket's row; scratch is a reusable buffer.
func (st *ticketState) setRow(row *change.Row, scratch []byte, fromSource bool) []byte {
	scratch = appendMembers(scratch[:0], row, nil)
	st.members = cloneBytes(scratch)
	st.rowKnown, st.notFound, st.fromSource = true, false, fromSource
	for i, col := range trackedColumns {
		v, typ, ok := rowValue(row, col)
		if !ok {
			st.tracked[i] = shown{}
			continue
		}
		s, isSet := scalarText(v, typ)
		st.tracked[i] = shown{s, isSet}
	}
	st.userID, _ = rowInt(row, "user_id")
	st.statusID, _ = rowInt(row, "status")
	st.deptID, _ = rowInt(row, "dept_id")
	st.sourceID, _ = rowInt(row, "source")
	st.teamID, _ = rowInt(row, "team_id")
	return scratch
}

// setFacts replaces the thread facts with what the source says; gen is the
// Mapper's factsGen.
func (st *ticketState) setFacts(f TicketFacts, scratch []byte, gen uint64) []byte {
	st.factsGen = gen
	st.firstThreadID, st.firstThread = 0, nil
	if f.FirstThread != nil {
		st.firstThreadID, _ = rowInt(f.FirstThread, "id")
		scratch = appendThreadObject(scratch[:0], f.FirstThread)
		st.firstThread = cloneBytes(scratch)
	}
	st.threadCount = f.ThreadCount
	st.lastPoster = f.LastPoster
	st.lastPublicID = 0
	st.maxThreadID = max(f.MaxThreadID, st.firstThreadID)
	st.collaborators = f.CollaboratorCount
	st.attachments = f.AttachmentCount
	return scratch
}

// appendThreadObject renders a ticket_thread row as an object.
func appendThreadObject(dst []byte, row *change.Row) []byte {
	dst = append(dst, '{')
	dst = appendMembers(dst, row, nil)
	return append(dst, '}')
}

// newTicketLRU and newUserLRU make the state's LRUs, bounded as cfg says.
func newTicketLRU(cfg Config) *lru[*ticketState] {
	return newSizedLRU(cfg.StateSize, cfg.stateBytes(), (*ticketState).size)
}

func newUserLRU(cfg Config) *lru[*userEntry] {
	return newSizedLRU(cfg.StateSize, cfg.stateBytes()/4, func(u *userEntry) int {
		return len(u.full) + len(u.short) + 96
	})
}

// size estimates the memory a ticket's state holds.
func (st *ticketState) size() int {
	return len(st.members) + len(st.firstThread) + len(st.lastPoster) + len(st.encryptedID) + 320
}

// userEntry is a users row rendered in its two payload forms.
type userEntry struct {
	full, short []byte
}

// statusEntry is a ticket_status row rendered, and its status type's id.
type statusEntry struct {
	members []byte
	typeID  int64 // purpose_of_status; 0: none
}

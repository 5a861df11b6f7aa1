package mapping

import (
	"strings"
	"unsafe"

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
// Collaborators and attachments are counted by the source with the thread
// facts; a change the stream shows to either makes the ticket's facts
// unknown, to be read again when an event needs them.

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

// ticketState is what the mapper knows about one ticket. It is kept small:
// tens of thousands of them make the state, and the backlog of a busy
// helpdesk touches that many tickets before it touches one twice.
type ticketState struct {
	id int64

	// row is the tickets row as payloads show it (unset until known).
	// The tracked columns' old values, when an update lacks its old row,
	// are read back from it.
	row packedRow
	// firstThread is the first thread's row as first_thread shows it
	// (unset: none).
	firstThread packedRow

	userID   int64 // 0: none
	statusID int64
	deptID   int64
	sourceID int64

	// factsGen: the thread facts below are current when it equals the
	// Mapper's factsGen (0: unknown). A ticket inserted in the stream starts
	// with current (empty) facts; one first met in an UPDATE has none until
	// they are read from the source. A thread change the mapper cannot
	// apply makes them unknown: for one ticket by zeroing this, for every
	// ticket at once by moving the Mapper's factsGen on.
	factsGen      uint64
	firstThreadID int64
	threadCount   int64
	// lastPoster is interned (Mapper.intern): a thread's poster is a
	// substring of the whole replication message it came in, which it
	// would otherwise keep alive.
	lastPoster string
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

	// rowKnown: row and the ids above describe the current row.
	rowKnown bool
	// notFound: the source has no such ticket (deleted since); its events
	// are dropped.
	notFound bool
	// fromSource: the row was read from the source, so it is as of that
	// read and cannot serve as the "old" side of an update.
	fromSource bool
	// deleted: a DELETE of the row was seen; events still pending for it in
	// the same chunk are dropped.
	deleted bool
	// insertEpoch is the Mapper's threadEpoch when the stream showed this
	// ticket's INSERT. A thread that looks like the ticket's first fires
	// ticket_created only while it equals the Mapper's threadEpoch: a
	// TRUNCATE of the threads table since then (or an insert this process
	// never saw, after one) means earlier threads may be gone.
	insertEpoch uint32
}

// setRow replaces the ticket's row; scratch is a reusable buffer.
func (m *Mapper) setRow(st *ticketState, row *change.Row, fromSource bool) {
	st.row, m.scratch = m.shapes.pack(row, m.scratch)
	st.rowKnown, st.notFound, st.fromSource = true, false, fromSource
	st.userID, _ = rowInt(row, "user_id")
	st.statusID, _ = rowInt(row, "status")
	st.deptID, _ = rowInt(row, "dept_id")
	st.sourceID, _ = rowInt(row, "source")
}

// forgetRow makes the ticket's row unknown (to be read again if needed).
func (st *ticketState) forgetRow() {
	st.rowKnown, st.row = false, packedRow{}
}

// tracked is the value of tracked column i in the ticket's known row.
func (st *ticketState) tracked(i int) []byte {
	v := st.row.value(trackedColumns[i])
	if v == nil {
		return []byte("null") // not a column of the row: shown as NULL
	}
	return v
}

// setFirstThread keeps row as the ticket's first thread.
func (m *Mapper) setFirstThread(st *ticketState, row *change.Row) {
	st.firstThread, m.scratch = m.shapes.pack(row, m.scratch)
}

// setFacts replaces the thread facts with what the source says.
func (m *Mapper) setFacts(st *ticketState, f TicketFacts) {
	st.factsGen = m.factsGen
	st.firstThreadID, st.firstThread = 0, packedRow{}
	if f.FirstThread != nil {
		st.firstThreadID, _ = rowInt(f.FirstThread, "id")
		m.setFirstThread(st, f.FirstThread)
	}
	st.threadCount = f.ThreadCount
	st.lastPoster = m.intern(f.LastPoster)
	st.lastPublicID = 0
	st.maxThreadID = max(f.MaxThreadID, st.firstThreadID)
	st.collaborators = f.CollaboratorCount
	st.attachments = f.AttachmentCount
}

// intern returns s from a small table of posters seen ("client",
// "support", agents' roles), or a copy of it once the table is full.
func (m *Mapper) intern(s string) string {
	if p, ok := m.posters[s]; ok {
		return p
	}
	s = strings.Clone(s)
	if len(m.posters) < maxPosters {
		m.posters[s] = s
	}
	return s
}

const maxPosters = 64

// newTicketLRU and newUserLRU make the state's LRUs, bounded as cfg says:
// the tickets take three quarters of StateBytes, the users a quarter.
func newTicketLRU(cfg Config) *lru[*ticketState] {
	return newSizedLRU(cfg.StateSize, cfg.StateBytes-cfg.StateBytes/4, (*ticketState).size)
}

func newUserLRU(cfg Config) *lru[*userEntry] {
	return newSizedLRU(cfg.StateSize, cfg.StateBytes/4, (*userEntry).size)
}

// ticketStateSize is the heap of a ticketState, its LRU entry and its
// slot in the LRU's map (8-byte key and pointer, swiss-table control byte,
// at a load between 7/16 and 7/8).
var ticketStateSize = change.HeapBytes(int(unsafe.Sizeof(ticketState{}))) +
	change.HeapBytes(int(unsafe.Sizeof(lruEntry[*ticketState]{}))) + 32

// size is the memory a ticket's state holds: what the allocator really
// hands out for it, so that StateBytes bounds the heap.
func (st *ticketState) size() int {
	return ticketStateSize + st.row.size() + st.firstThread.size()
}

// userEntry is a users row rendered in its two payload forms.
type userEntry struct {
	full, short []byte
}

// newUserEntry renders a users row for the state.
func newUserEntry(row *change.Row) *userEntry {
	full, short := renderUser(row)
	return &userEntry{full: cloneBytes(full), short: cloneBytes(short)}
}

// userEntrySize is the heap of a userEntry, its LRU entry and map slot.
var userEntrySize = change.HeapBytes(int(unsafe.Sizeof(userEntry{}))) +
	change.HeapBytes(int(unsafe.Sizeof(lruEntry[*userEntry]{}))) + 32

func (u *userEntry) size() int {
	return userEntrySize + change.HeapBytes(cap(u.full)) + change.HeapBytes(cap(u.short))
}

// statusEntry is a ticket_status row rendered, and its status type's id.
type statusEntry struct {
	members []byte
	typeID  int64 // purpose_of_status; 0: none
}

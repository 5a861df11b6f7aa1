package mapping

import (
	"time"

	"github.com/deskhook/deskhook/change"
)

// The events deskhook emits, named as Faveo names them.
const (
	TicketCreated           = "ticket_created"
	TicketReply             = "ticket_reply"
	TicketStatusUpdated     = "ticket_status_updated"
	TicketDepartmentUpdated = "ticket_department_updated"
	TicketAssigned          = "ticket_assigned"
	TicketCommented         = "ticket_commented"
	TicketOwnerUpdated      = "ticket_owner_updated"
	TicketDueDateUpdated    = "ticket_due_date_updated"
)

// FaveoEvents are the five events Faveo documents: an endpoint's default
// subscription.
var FaveoEvents = []string{TicketCreated, TicketReply, TicketStatusUpdated, TicketDepartmentUpdated, TicketAssigned}

// AllEvents lists every event deskhook can emit, in the contract's order.
var AllEvents = []string{TicketCreated, TicketReply, TicketStatusUpdated, TicketDepartmentUpdated,
	TicketAssigned, TicketCommented, TicketOwnerUpdated, TicketDueDateUpdated}

// Event is one webhook event, ready to be stored and delivered.
//
// Its identity is (Pos, Index): the commit position of the transaction that
// caused it and its index among that transaction's events. Mapping the same
// transaction again yields the same ID and the same Payload.
type Event struct {
	ID         string          // stable id, sent as webhook-id: EventID(Pos, Index)
	Type       string          // one of the event constants
	Pos        change.Position // commit position of the causing transaction
	Index      uint32          // index of the event within that transaction
	CommitTime time.Time       // commit time of the causing transaction
	TicketID   int64           // per-ticket ordering key
	DeptID     int64           // tickets.dept_id as of the event, for endpoint filters (0: none)
	SourceID   int64           // tickets.source as of the event, for endpoint filters (0: none)
	// Payload is the event's canonical JSON: an object whose keys are in
	// Faveo's payload order, scalars all strings, nulls kept. Renderers
	// derive every wire format from it.
	Payload []byte
}

// EventID derives the stable event id from the commit position and index:
// "evt_" + 16 hex digits of the position + "_" + the index, at least 4
// decimal digits (fmt's "evt_%016x_%04d", written by hand: it is on the
// mapper's hot path).
func EventID(pos change.Position, index uint32) string {
	var b [4 + 16 + 1 + 10]byte
	copy(b[:], "evt_")
	const hexDigits = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		b[4+i] = hexDigits[uint64(pos)>>(60-4*i)&15]
	}
	b[20] = '_'
	n := 21
	var d [10]byte
	j := len(d)
	for v := index; ; v /= 10 {
		j--
		d[j] = byte('0' + v%10)
		if v < 10 {
			break
		}
	}
	for pad := 4 - (len(d) - j); pad > 0; pad-- {
		b[n] = '0'
		n++
	}
	n += copy(b[n:], d[j:])
	return string(b[:n])
}

package mapping

// Applying row changes to the state, and finding the events they fire
// (docs/faveo-webhooks.md, "Events": which row change fires which event).

import (
	"bytes"
	"context"
	"strings"

	"github.com/deskhook/deskhook/change"
)

// apply applies one change to the state and records the events it fires.
func (m *Mapper) apply(ctx context.Context, c *change.Change) error {
	kind := m.kind(c)
	if c.Op == change.Truncate {
		switch kind {
		case tableTickets:
			m.tickets.clear()
			for _, st := range m.local {
				st.deleted = true
			}
			clear(m.local)
		case tableThreads:
			// Every ticket's thread facts are gone; read them again when
			// needed. Read after the TRUNCATE, they can no longer tell a
			// ticket's first thread (its ticket_created) from a reply to a
			// ticket whose earlier threads were truncated: from now on only
			// tickets the stream shows inserted after it can fire
			// ticket_created (see ticketState.insertEpoch).
			m.factsGen++
			m.threadEpoch++
		case tableCollaborators, tableAttachments:
			m.factsGen++ // every ticket's counts may have dropped
		case tableUsers:
			m.users.clear()
		case tableStatuses:
			m.statuses.clear()
		case tableStatusTypes:
			m.types.clear()
		}
		return nil
	}
	switch kind {
	case tableTickets:
		return m.applyTicket(c)
	case tableThreads:
		return m.applyThread(ctx, c)
	case tableUsers, tableStatuses, tableStatusTypes:
		return m.applyRelated(kind, c)
	case tableCollaborators:
		m.applyCollaborator(c)
	case tableAttachments:
		return m.applyAttachment(ctx, c)
	}
	return nil
}

// applyCollaborator keeps collaborator_count current: a ticket whose
// collaborators changed has its counts read again when an event needs
// them (whether a collaborator counts depends on its user's email, which
// the row does not show). A delete that names no ticket (the default
// replica identity sends only the key) may have been any ticket's.
func (m *Mapper) applyCollaborator(c *change.Change) {
	named := false
	for _, row := range [...]*change.Row{c.Old, c.New} {
		if tid, ok := rowInt(row, "ticket_id"); ok {
			m.forgetFacts(tid)
			named = true
		}
	}
	if !named {
		m.factsGen++
	}
}

// applyAttachment keeps attachment_count current: attachments name their
// thread, whose ticket has its counts read again when an event needs them.
// The thread's ticket is known when the stream showed the thread recently;
// otherwise it is read from the source. A delete that names no thread (the
// default replica identity) may have been any ticket's.
func (m *Mapper) applyAttachment(ctx context.Context, c *change.Change) error {
	named := false
	for _, row := range [...]*change.Row{c.Old, c.New} {
		thread, ok := rowInt(row, "thread_id")
		if !ok {
			continue
		}
		named = true
		tid, ok := m.threadTickets.get(thread)
		if !ok {
			rows, err := m.fetchRows(ctx, m.cfg.Tables.Threads, []int64{thread})
			if err != nil {
				return err
			}
			if tid, ok = rowInt(rows[thread], "ticket_id"); !ok {
				continue // no such thread (any more): no ticket's count changed
			}
			m.threadTickets.put(thread, tid)
		}
		m.forgetFacts(tid)
	}
	if !named {
		m.factsGen++
	}
	return nil
}

func (m *Mapper) applyTicket(c *change.Change) error {
	switch c.Op {
	case change.Insert, change.Update:
		if c.New == nil {
			return badRow("%s without a new row", c.Op)
		}
		id, ok := rowInt(c.New, "id")
		if !ok {
			return badRow("tickets row: %v", errNoID)
		}
		st := m.ticket(id)
		if st == nil {
			// A ticket inserted in the stream has no threads yet; one first
			// met in an update has facts to read from the source later.
			st = &ticketState{id: id}
			if c.Op == change.Insert {
				st.factsGen = m.factsGen
			}
		}
		if c.Op == change.Insert {
			st.insertEpoch = m.threadEpoch
		}
		if c.Op == change.Update {
			m.ticketUpdateTriggers(st, c)
		}
		if hasUnchanged(c.New) {
			// The source could not send some values and we cannot fill them
			// in: read the row again if an event needs it.
			st.forgetRow()
		} else {
			m.setRow(st, c.New, false)
		}
		st.deleted = false
		m.keepTicket(st)
	case change.Delete:
		id, ok := rowInt(c.Old, "id")
		if !ok {
			return badRow("tickets delete: %v", errNoID)
		}
		if st := m.ticket(id); st != nil {
			st.deleted = true
		}
		delete(m.local, id)
		m.tickets.remove(id)
	}
	return nil
}

// ticketUpdateTriggers records the events an UPDATE of a tickets row fires,
// in the contract's order. The old side of each column comes from the
// change's old row (REPLICA IDENTITY FULL) or else from the state.
func (m *Mapper) ticketUpdateTriggers(st *ticketState, c *change.Change) {
	var changed, newSet [nTracked]bool
	unknown := []string(nil)
	for i, col := range trackedColumns {
		nv, typ, ok := rowValue(c.New, col)
		if !ok || nv.Kind == change.KindUnchanged {
			continue // not in the row, or not sent: not changed by this update
		}
		newSet[i] = !nv.IsNull()
		if ov, _, ok := rowValue(c.Old, col); ok && ov.Kind != change.KindUnchanged {
			changed[i] = !equalScalar(ov, nv, typ)
			continue
		}
		if st.rowKnown && !st.fromSource {
			// The old value as the state rendered it, against the new one
			// rendered alike.
			m.scratch = appendScalar(m.scratch[:0], nv, typ)
			changed[i] = !bytes.Equal(st.tracked(i), m.scratch)
			continue
		}
		unknown = append(unknown, col)
	}
	if unknown != nil {
		m.log.Warn("mapping: tickets update without the old values (is REPLICA IDENTITY FULL set on tickets?): "+
			"cannot tell whether these columns changed, so no event for them",
			"ticket_id", st.id, "columns", strings.Join(unknown, ","))
	}
	fire := m.firing(&changed, &newSet)
	for _, f := range firingEvents {
		if fire&(1<<f.col) != 0 {
			m.triggers = append(m.triggers, trigger{event: f.event, st: st})
		}
	}
}

// firingEvents names the event each tracked column fires, in the order a
// ticket update's events come.
var firingEvents = [...]struct {
	col   int
	event string
}{
	{colStatus, TicketStatusUpdated}, {colDept, TicketDepartmentUpdated},
	{colAssignedTo, TicketAssigned}, {colTeam, TicketAssigned},
	{colUser, TicketOwnerUpdated}, {colDueDate, TicketDueDateUpdated},
}

// firing returns, as bits by tracked column, the columns whose change fires
// an event, given which changed and which the update set to a value (not
// NULL): status, department, owner and due date on any change; the
// assignee only when set to someone; the team (with TeamAssignment) only
// when set and the assignee did not fire already (one ticket_assigned).
// Map and Prefetch both decide by it.
func (m *Mapper) firing(changed, set *[nTracked]bool) (bits int) {
	for _, i := range [...]int{colStatus, colDept, colUser, colDueDate} {
		if changed[i] {
			bits |= 1 << i
		}
	}
	switch {
	case changed[colAssignedTo] && set[colAssignedTo]:
		bits |= 1 << colAssignedTo
	case m.cfg.TeamAssignment && changed[colTeam] && set[colTeam]:
		bits |= 1 << colTeam
	}
	return bits
}

// notMessageThreadTypes are the thread types of notes and activity
// threads: a client's public thread of such a type is no comment.
var notMessageThreadTypes = map[string]bool{
	"note": true, "ticket_assign_alert": true, "ticket_transfer_alert": true,
	"internal_activity_alert": true, "response_due": true, "resolve_due": true,
}

// isInternal reports whether a thread row is internal (notes, activity).
func isInternal(row *change.Row) bool {
	n, ok := rowInt(row, "is_internal")
	if ok {
		return n != 0
	}
	switch strings.ToLower(rowText(row, "is_internal")) {
	case "t", "true":
		return true
	}
	return false
}

func (m *Mapper) applyThread(ctx context.Context, c *change.Change) error {
	switch c.Op {
	case change.Insert:
		return m.threadInsert(ctx, c.New)
	case change.Update:
		m.threadUpdate(c)
	case change.Delete:
		// With FULL replica identity the old row names the ticket, whose
		// facts are read again when needed. With the default identity it has
		// only the id: any ticket may have lost a thread, so every ticket's
		// facts are (deletes of threads are rare: tickets emptied from the
		// trash, and their tickets go with them).
		if tid, ok := rowInt(c.Old, "ticket_id"); ok {
			m.forgetFacts(tid)
		} else {
			m.factsGen++
		}
	}
	return nil
}

// threadUpdate keeps thread facts current through an UPDATE of a thread.
// An edit that keeps the ticket's first thread or its last public thread
// public is applied in place (first_thread, poster). Any other update may
// have changed what the facts count (a thread made internal or public, its
// ticket on a merge) and, without the old row, the mapper cannot tell: the
// ticket's facts are read again when an event needs them. A thread moved
// away from a ticket is noticed only with the old row (FULL replica
// identity).
func (m *Mapper) threadUpdate(c *change.Change) {
	id, idOK := rowInt(c.New, "id")
	tid, ok := rowInt(c.New, "ticket_id")
	if ok && idOK {
		m.threadTickets.put(id, tid)
	}
	if oldTID, oldOK := rowInt(c.Old, "ticket_id"); oldOK && (!ok || oldTID != tid) {
		m.forgetFacts(oldTID)
	}
	if !ok || !idOK {
		return // no ticket: nothing a payload shows
	}
	st := m.ticket(tid)
	if st == nil || !m.factsKnown(st) {
		return
	}
	first, last := st.firstThreadID == id, st.lastPublicID == id
	if (first || last) && !isInternal(c.New) && !hasUnchanged(c.New) {
		if first {
			m.setFirstThread(st, c.New)
		}
		if last {
			st.lastPoster = m.intern(rowText(c.New, "poster"))
		}
		return
	}
	st.factsGen = 0
}

// forgetFacts makes a ticket's thread facts unknown, if the state has it.
func (m *Mapper) forgetFacts(ticketID int64) {
	if st := m.ticket(ticketID); st != nil {
		st.factsGen = 0
	}
}

func (m *Mapper) threadInsert(ctx context.Context, row *change.Row) error {
	if row == nil {
		return badRow("thread insert without a row")
	}
	id, ok := rowInt(row, "id")
	if !ok {
		return badRow("ticket_thread row: %v", errNoID)
	}
	tid, ok := rowInt(row, "ticket_id")
	if !ok {
		return badRow("ticket_thread row %d: no integer ticket_id", id)
	}
	m.threadTickets.put(id, tid)
	st := m.ticket(tid)
	if isInternal(row) {
		// Notes and activity fire nothing and count for nothing.
		if st != nil && m.factsKnown(st) {
			st.maxThreadID = max(st.maxThreadID, id)
		}
		return nil
	}
	if !m.complete(st) {
		if err := m.fetchTickets(ctx, []int64{tid}); err != nil {
			return err
		}
		st = m.ticket(tid)
	}
	poster := rowText(row, "poster")
	first := st.firstThreadID == id
	if id > st.maxThreadID {
		st.maxThreadID = id
		st.threadCount++
		st.lastPoster = m.intern(poster)
		st.lastPublicID = id
		if st.firstThreadID == 0 {
			first = true
			st.firstThreadID = id
			m.setFirstThread(st, row)
		}
	}
	if first && m.threadEpoch != st.insertEpoch {
		// The threads table was truncated after this ticket was inserted
		// (or this process never saw the insert since): its first thread
		// as read now may follow threads that are gone, and the ticket was
		// created long ago. No ticket_created is made up from it.
		first = false
	}
	if first {
		m.triggers = append(m.triggers, trigger{event: TicketCreated, st: st})
		return nil
	}
	var event string
	v, _, _ := rowValue(row, "thread_type")
	threadType := v.Text // "" for NULL
	switch poster {
	case "support":
		if threadType == "" || threadType == "first_reply" {
			event = TicketReply
		}
	case "client":
		if !notMessageThreadTypes[threadType] {
			event = TicketCommented
		}
	}
	if event == "" {
		return nil
	}
	userID, _ := rowInt(row, "user_id")
	m.triggers = append(m.triggers, trigger{event: event, st: st, thread: row, userID: userID})
	return nil
}

// applyRelated keeps users, statuses and status types current. A row the
// stream sends incompletely (unchanged TOAST values) is dropped rather than
// kept half-known; it is read from the source when needed.
func (m *Mapper) applyRelated(kind tableKind, c *change.Change) error {
	row := c.New
	if c.Op == change.Delete {
		row = c.Old
	}
	id, ok := rowInt(row, "id")
	if !ok {
		return badRow("%s row: %v", c.Table.Name, errNoID)
	}
	drop := c.Op == change.Delete || hasUnchanged(c.New)
	switch kind {
	case tableUsers:
		delete(m.chunkUsers, id)
		if drop {
			m.users.remove(id)
			return nil
		}
		m.users.put(id, newUserEntry(c.New))
	case tableStatuses:
		delete(m.chunkStatus, id)
		if drop {
			m.statuses.remove(id)
			return nil
		}
		m.statuses.put(id, m.newStatusEntry(c.New))
	case tableStatusTypes:
		delete(m.chunkTypes, id)
		if drop {
			m.types.remove(id)
			return nil
		}
		m.types.put(id, appendMembers(nil, c.New, nil))
	}
	return nil
}

func (m *Mapper) newStatusEntry(row *change.Row) *statusEntry {
	members, bad := renderStatus(row)
	id, _ := rowInt(row, "id")
	if bad {
		m.metrics.badRows.WithLabelValues(row.Table.Name).Inc()
		m.log.Warn("mapping: ticket_status.send_email is not JSON; shown as null", "status_id", id)
	}
	typeID, _ := rowInt(row, "purpose_of_status")
	return &statusEntry{members: members, typeID: typeID}
}

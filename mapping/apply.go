package mapping

// Applying row changes to the state, and finding the events they fire
// (faveo-contract.md, "Events": trigger in the database).

import (
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
			// Every ticket's thread facts are gone; read them again when needed.
			for _, st := range m.local {
				st.factsKnown = false
			}
			m.tickets.clear()
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
			st = &ticketState{id: id, factsKnown: c.Op == change.Insert}
		}
		if c.Op == change.Update {
			m.ticketUpdateTriggers(st, c)
		}
		if hasUnchanged(c.New) {
			// The source could not send some values and we cannot fill them
			// in: read the row again if an event needs it.
			st.rowKnown, st.members = false, nil
		} else {
			m.scratch = st.setRow(c.New, m.scratch, false)
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
	var changed [nTracked]bool
	var newVal [nTracked]shown
	unknown := []string(nil)
	for i, col := range trackedColumns {
		nv, typ, ok := rowValue(c.New, col)
		if !ok || nv.Kind == change.KindUnchanged {
			continue // not in the row, or not sent: not changed by this update
		}
		s, set := scalarText(nv, typ)
		newVal[i] = shown{s, set}
		if ov, _, ok := rowValue(c.Old, col); ok && ov.Kind != change.KindUnchanged {
			changed[i] = !equalScalar(ov, nv, typ)
			continue
		}
		if st.rowKnown && !st.fromSource {
			changed[i] = st.tracked[i] != newVal[i]
			continue
		}
		unknown = append(unknown, col)
	}
	if unknown != nil {
		m.log.Warn("mapping: tickets update without the old values (is REPLICA IDENTITY FULL set on tickets?): "+
			"cannot tell whether these columns changed, so no event for them",
			"ticket_id", st.id, "columns", strings.Join(unknown, ","))
	}
	add := func(ev string) { m.triggers = append(m.triggers, trigger{event: ev, st: st}) }
	if changed[colStatus] {
		add(TicketStatusUpdated)
	}
	if changed[colDept] {
		add(TicketDepartmentUpdated)
	}
	switch {
	case changed[colAssignedTo] && newVal[colAssignedTo].ok:
		add(TicketAssigned)
	case m.cfg.TeamAssignment && changed[colTeam] && newVal[colTeam].ok:
		add(TicketAssigned)
	}
	if changed[colUser] {
		add(TicketOwnerUpdated)
	}
	if changed[colDueDate] {
		add(TicketDueDateUpdated)
	}
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
		tid, ok := rowInt(c.New, "ticket_id")
		id, idOK := rowInt(c.New, "id")
		if !ok || !idOK {
			return nil // nothing we track can be affected
		}
		if st := m.ticket(tid); st != nil && st.factsKnown && st.firstThreadID == id {
			if hasUnchanged(c.New) {
				st.factsKnown = false // read the first thread again when needed
				return nil
			}
			m.scratch = appendThreadObject(m.scratch[:0], c.New)
			st.firstThread = cloneBytes(m.scratch)
		}
	case change.Delete:
		// With the default replica identity the old row has only the id, so
		// the ticket is unknown; with FULL, its facts are read again.
		if tid, ok := rowInt(c.Old, "ticket_id"); ok {
			if st := m.ticket(tid); st != nil {
				st.factsKnown = false
			}
		}
	}
	return nil
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
	st := m.ticket(tid)
	if isInternal(row) {
		// Notes and activity fire nothing and count for nothing.
		if st != nil && st.factsKnown {
			st.maxThreadID = max(st.maxThreadID, id)
		}
		return nil
	}
	if !st.complete() {
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
		st.lastPoster = poster
		if st.firstThreadID == 0 {
			first = true
			st.firstThreadID = id
			m.scratch = appendThreadObject(m.scratch[:0], row)
			st.firstThread = cloneBytes(m.scratch)
		}
	}
	if first {
		m.triggers = append(m.triggers, trigger{event: TicketCreated, st: st})
		return nil
	}
	var event string
	switch poster {
	case "support":
		v, _, _ := rowValue(row, "thread_type")
		if tt := v.Text; v.IsNull() || tt == "" || tt == "first_reply" {
			event = TicketReply
		}
	case "client":
		event = TicketCommented
	}
	if event == "" {
		return nil
	}
	userID, _ := rowInt(row, "user_id")
	m.scratch = appendMembers(m.scratch[:0], row, nil)
	m.triggers = append(m.triggers, trigger{event: event, st: st, thread: cloneBytes(m.scratch), userID: userID})
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
		full, short := renderUser(c.New)
		m.users.put(id, &userEntry{full: full, short: short})
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

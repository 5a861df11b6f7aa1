package mapping

import (
	"context"
	"slices"
	"strconv"

	"github.com/deskhook/deskhook/change"
)

// resolve makes sure everything the chunk's events show is at hand: thread
// facts and rows of tickets first met in an update, users, statuses and
// status types. What the state lacks is read from the source, a few queries
// per chunk, and pinned for the chunk.
func (m *Mapper) resolve(ctx context.Context) error {
	var need []int64
	for i := range m.triggers {
		if st := m.triggers[i].st; !st.deleted && !m.complete(st) {
			need = append(need, st.id)
		}
	}
	if err := m.fetchTickets(ctx, need); err != nil {
		return err
	}

	var users, statuses []int64
	for i := range m.triggers {
		tr := &m.triggers[i]
		switch tr.event {
		case TicketCreated, TicketOwnerUpdated:
			users = append(users, tr.st.userID)
		case TicketReply, TicketCommented:
			users = append(users, tr.userID)
		case TicketStatusUpdated, TicketDepartmentUpdated:
			statuses = append(statuses, tr.st.statusID)
		}
	}
	if err := pin(ctx, m, users, m.users, m.chunkUsers, m.cfg.Tables.Users, newUserEntry); err != nil {
		return err
	}
	if err := pin(ctx, m, statuses, m.statuses, m.chunkStatus, m.cfg.Tables.Statuses, m.newStatusEntry); err != nil {
		return err
	}
	var types []int64
	for _, id := range statuses {
		if e := m.chunkStatus[id]; e != nil {
			types = append(types, e.typeID)
		}
	}
	return pin(ctx, m, types, m.types, m.chunkTypes, m.cfg.Tables.StatusTypes, func(r *change.Row) []byte {
		return appendMembers(nil, r, nil)
	})
}

// pin copies the entries for ids from the LRU into the chunk's map, reading
// those it lacks from the source (a nil entry: no such row). Id 0 is "none".
// With a nil chunk it only fills the LRU (a prefetch for later chunks).
func pin[V any](ctx context.Context, m *Mapper, ids []int64, cache *lru[V], chunk map[int64]V,
	table string, render func(*change.Row) V) error {
	var missing []int64
	for _, id := range ids {
		if id == 0 {
			continue
		}
		if _, ok := chunk[id]; ok {
			continue
		}
		if e, ok := cache.get(id); ok {
			if chunk != nil {
				chunk[id] = e
			}
			continue
		}
		missing = append(missing, id)
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	if len(missing) == 0 {
		return nil
	}
	rows, err := m.fetchRows(ctx, table, missing)
	if err != nil {
		return err
	}
	var zero V
	for _, id := range missing {
		e := zero
		if r, ok := rows[id]; ok {
			e = render(r)
			cache.put(id, e)
		}
		if chunk != nil {
			chunk[id] = e
		}
	}
	return nil
}

// build renders one event's payload as canonical JSON, keys in Faveo's
// order (docs/faveo-webhooks.md, "Payloads").
// sizeHint is about the size of tr's payload, a little more: the rows it
// shows (the ticket's and its first thread's already rendered, the thread's
// text and its JSON escapes) and room for the rest.
func sizeHint(tr *trigger) int {
	n := 16 << 10
	if st := tr.st; st != nil {
		n += len(st.row.vals) + len(st.firstThread.vals)
	}
	if tr.thread != nil {
		for _, v := range tr.thread.Values {
			n += len(v.Text) + len(v.Text)/16
		}
	}
	return n
}

// maxKeptBuf bounds the payload buffer the mapper keeps between payloads.
const maxKeptBuf = 1 << 20

func (m *Mapper) build(tr *trigger) []byte {
	j := &m.buf
	j.b = j.b[:0]
	if hint := sizeHint(tr); hint > maxKeptBuf {
		// A large payload (a mail's body, the first thread's) is built in
		// one buffer of about its size, not grown step by step.
		j.b = slices.Grow(j.b, hint)
	}
	j.openObject()
	j.field("event", tr.event)
	st := tr.st
	switch tr.event {
	case TicketCreated:
		j.key("ticket")
		m.ticketObject(j, st, false, false)
		j.key("requester")
		m.userObject(j, st.userID, false)
	case TicketReply, TicketCommented:
		j.key("replied_by")
		m.userObject(j, tr.userID, false)
		j.key("thread")
		j.openObject()
		j.b = appendMembers(j.b, tr.thread, nil)
		j.comma = len(j.b) > 0 && j.b[len(j.b)-1] != '{'
		j.key("ticket")
		m.ticketObject(j, st, false, true)
		j.key("user")
		m.userObject(j, tr.userID, true)
		j.closeObject()
	case TicketStatusUpdated:
		j.key("ticket")
		m.ticketObject(j, st, true, true)
	case TicketDepartmentUpdated:
		j.key("thread") // sic: Faveo's key for this event
		m.ticketObject(j, st, true, true)
	case TicketAssigned, TicketDueDateUpdated:
		j.key("ticket")
		m.ticketObject(j, st, false, true)
	case TicketOwnerUpdated:
		j.key("ticket")
		m.ticketObject(j, st, false, true)
		j.key("requester")
		m.userObject(j, st.userID, false)
	}
	j.closeObject()
	if cap(j.b) > maxKeptBuf {
		// A large payload takes its buffer along rather than a copy (it
		// grew by large steps, so little of it is spare); the next, mostly
		// small, payloads start a new one.
		payload := j.b[:len(j.b):len(j.b)]
		j.b = nil
		return payload
	}
	return cloneBytes(j.b)
}

// ticketObject writes the ticket object: the whole tickets row, the appends
// (thread_count, collaborator_count, attachment_count, poster,
// encrypted_id, strictly_thread_count), then statuses and first_thread when
// the event shows them.
//
// strictly_thread_count is not in the contract's list but is in every
// ticket object of Faveo's documented examples, always equal to
// thread_count; receivers written against those examples may read it, so it
// is there, with the same value.
func (m *Mapper) ticketObject(j *jsonBuf, st *ticketState, statuses, firstThread bool) {
	j.openObject()
	st.row.appendTo(j)
	count := strconv.FormatInt(st.threadCount, 10)
	j.field("thread_count", count)
	j.key("collaborator_count")
	if st.collaborators > 0 {
		j.str(strconv.FormatInt(st.collaborators, 10))
	} else {
		j.null()
	}
	j.field("attachment_count", strconv.FormatInt(st.attachments, 10))
	j.field("poster", st.lastPoster)
	if m.enc != nil {
		j.key("encrypted_id")
		j.b = m.enc.appendEncryptedID(j.b, st.id)
		j.comma = true
	}
	j.field("strictly_thread_count", count)
	if statuses {
		j.key("statuses")
		if e := m.chunkStatus[st.statusID]; e != nil {
			j.openObject()
			appendRawMembers(j, e.members)
			j.key("type")
			if t, ok := m.chunkTypes[e.typeID]; ok && t != nil {
				j.openObject()
				appendRawMembers(j, t)
				j.closeObject()
			} else {
				j.null()
			}
			j.closeObject()
		} else {
			j.null()
		}
	}
	if firstThread {
		j.key("first_thread")
		if st.firstThread.known() {
			st.firstThread.appendObject(j)
		} else {
			j.null()
		}
	}
	j.closeObject()
}

// userObject writes a user in its short (requester, replied_by) or full
// (thread.user) form; null when there is no such user.
func (m *Mapper) userObject(j *jsonBuf, id int64, full bool) {
	e := m.chunkUsers[id]
	if id == 0 || e == nil {
		j.null()
		return
	}
	j.openObject()
	if full {
		appendRawMembers(j, e.full)
	} else {
		appendRawMembers(j, e.short)
	}
	j.closeObject()
}

package mapping

import (
	"context"

	"github.com/deskhook/deskhook/change"
)

// Prefetch reads from the source, in one round, what mapping bs (the
// transactions that follow, in commit order) will need and the state
// lacks: tickets replied to or updated that the state does not hold (their
// rows and thread facts, each ticket's facts bounded by the thread mark as
// of the transaction that first needs them, as Map would read them), and
// the users and statuses their events show. Map each of bs afterwards as
// usual: it then finds them in the state. Prefetch changes no event; it
// only saves round trips (one per transaction that misses, otherwise).
//
// It reads ahead only for changes that fire an event for sure, so a large
// transaction of updates that fire nothing (an SLA sweep) reads nothing.
// What it misses, or what the state evicts before it is used, Map reads
// itself.
func (m *Mapper) Prefetch(ctx context.Context, bs []*change.Batch) error {
	if len(bs) == 0 {
		return nil
	}
	defer m.release()
	p := prefetch{m: m, mark: m.threadMark, inserted: map[int64]bool{}, streamed: map[int64]bool{}}
	for _, b := range bs {
		if b == nil {
			continue
		}
		p.batch(b)
	}
	if err := m.fetchNeeds(ctx, p.tickets); err != nil {
		return err
	}
	if err := pin(ctx, m, p.users, m.users, nil, m.cfg.Tables.Users, newUserEntry); err != nil {
		return err
	}
	return pin(ctx, m, p.statuses, m.statuses, nil, m.cfg.Tables.Statuses, m.newStatusEntry)
}

// prefetch collects what a run of batches will need.
type prefetch struct {
	m    *Mapper
	mark int64 // thread mark as of the end of the batch being scanned
	// inserted: tickets inserted earlier in the run (complete from then on).
	inserted map[int64]bool
	// streamed: users rows the run itself carries (no need to read them).
	streamed map[int64]bool
	tickets  []ticketNeed
	users    []int64
	statuses []int64
}

func (p *prefetch) batch(b *change.Batch) {
	m := p.m
	// As Map does, the mark covers the whole batch first.
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Op == change.Insert && m.kind(c) == tableThreads {
			if id, ok := rowInt(c.New, "id"); ok {
				p.mark = max(p.mark, id)
			}
		}
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		switch m.kind(c) {
		case tableTickets:
			p.ticketChange(c)
		case tableThreads:
			if c.Op != change.Insert || c.New == nil || isInternal(c.New) {
				continue
			}
			tid, ok := rowInt(c.New, "ticket_id")
			if !ok {
				continue
			}
			if !p.inserted[tid] && !p.complete(tid) {
				p.tickets = append(p.tickets, ticketNeed{id: tid, mark: p.mark, row: true})
			}
			p.user(c.New, "user_id") // replied_by, thread.user
		case tableUsers:
			if c.Op != change.Delete && c.New != nil {
				if id, ok := rowInt(c.New, "id"); ok {
					p.streamed[id] = true
				}
			}
		}
	}
}

// ticketChange notes what an insert or update of a tickets row will need.
func (p *prefetch) ticketChange(c *change.Change) {
	if c.New == nil {
		return
	}
	id, ok := rowInt(c.New, "id")
	if !ok {
		return
	}
	switch c.Op {
	case change.Insert:
		p.inserted[id] = true
		p.user(c.New, "user_id") // requester
	case change.Update:
		changed := p.changed(c)
		if changed == 0 {
			return
		}
		if !p.inserted[id] {
			if st, ok := p.m.tickets.get(id); !ok || !p.m.factsKnown(st) {
				// The update brings the row; the facts are the state's.
				p.tickets = append(p.tickets, ticketNeed{id: id, mark: p.mark})
			}
		}
		if changed&(1<<colUser) != 0 {
			p.user(c.New, "user_id") // requester
		}
		if changed&(1<<colStatus|1<<colDept) != 0 {
			if sid, ok := rowInt(c.New, "status"); ok && sid != 0 {
				p.statuses = append(p.statuses, sid)
			}
		}
	}
}

// changed returns, as bits by tracked column, the columns whose change
// fires an event (Mapper.firing), as far as the update's old row tells
// (without the old row: none, and Map reads what it needs).
func (p *prefetch) changed(c *change.Change) int {
	var changed, set [nTracked]bool
	for i, col := range trackedColumns {
		nv, typ, ok := rowValue(c.New, col)
		if !ok || nv.Kind == change.KindUnchanged {
			continue
		}
		if ov, _, ok := rowValue(c.Old, col); ok && ov.Kind != change.KindUnchanged {
			changed[i], set[i] = !equalScalar(ov, nv, typ), !nv.IsNull()
		}
	}
	return p.m.firing(&changed, &set)
}

// complete reports whether the state holds all a payload needs of ticket id.
func (p *prefetch) complete(id int64) bool {
	st, ok := p.m.tickets.get(id)
	return ok && p.m.complete(st)
}

// user notes the user a row's column names, unless the state or the run
// has it.
func (p *prefetch) user(row *change.Row, col string) {
	id, ok := rowInt(row, col)
	if !ok || id == 0 || p.streamed[id] {
		return
	}
	if _, ok := p.m.users.get(id); !ok {
		p.users = append(p.users, id)
	}
}

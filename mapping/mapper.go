package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the Mapper's collaborators.
type Options struct {
	// Logger receives bad rows and lookups; nil discards.
	Logger *slog.Logger
	// Registerer receives the mapper's metrics; nil: no metrics.
	Registerer prometheus.Registerer
}

// Mapper turns committed transactions into events. It keeps the state of
// related rows current from the changes it maps, so it must see every
// transaction of the stream, in commit order. Not safe for concurrent use.
//
// Payloads show the rows as of the end of the batch: for a transaction
// handed over in one batch, as of its commit; a transaction split into
// chunks shows, in each chunk's events, the rows as of that chunk's end.
// Rows the stream has not shown come from the Source as they are when read
// (thread facts bounded to the threads the stream has delivered): a ticket
// first met long after it was last written shows its current row.
//
// Mapping a transaction again (a retried batch, or the same transactions
// replayed into a fresh Mapper after a restart) gives the same ids and the
// same triggers; thread counts are not counted twice (threads at or below a
// ticket's highest counted thread id are not counted again).
type Mapper struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	enc     *idEncrypter
	metrics *metrics
	tables  map[string]tableKind

	tickets  *lru[*ticketState]
	users    *lru[*userEntry]
	statuses *lru[*statusEntry]
	types    *lru[[]byte]

	// The transaction being mapped: events are numbered across its chunks.
	pos        change.Position
	seq        int
	index      uint32 // next event index in the transaction
	chunkStart uint32 // index at the start of the current chunk, for retries

	// factsGen is the generation of current thread facts (see
	// ticketState.factsGen); never 0.
	factsGen uint64

	// threadMark is the highest thread id the stream has delivered (up to
	// the end of the chunk being mapped): facts read from the source leave
	// out later threads.
	threadMark int64

	// Per chunk: states and rows pinned while the chunk's events are built,
	// so that the LRU cannot evict them half-way.
	local       map[int64]*ticketState
	chunkUsers  map[int64]*userEntry   // nil value: no such user
	chunkStatus map[int64]*statusEntry // nil value: no such status
	chunkTypes  map[int64][]byte
	triggers    []trigger
	scratch     []byte
	buf         jsonBuf

	shapes  shapes            // of packed rows
	posters map[string]string // interned thread posters

	// shape says which tables lack columns the mapping reads (Needs).
	shape *shapeCheck
	// threadTickets maps recently streamed threads to their tickets, so
	// that an attachment (which names its thread) finds its ticket
	// without a read from the source.
	threadTickets *lru[int64]
	// threadEpoch counts the TRUNCATEs of the threads table seen by this
	// process (see ticketState.insertEpoch).
	threadEpoch uint32
}

// recentThreads bounds threadTickets: attachments follow their thread
// closely (Faveo writes them in the same request).
const recentThreads = 4096

type tableKind uint8

const (
	tableOther tableKind = iota
	tableTickets
	tableThreads
	tableUsers
	tableStatuses
	tableStatusTypes
	tableIgnored       // departments, teams: recognised, shown in no payload
	tableCollaborators // counted in collaborator_count
	tableAttachments   // counted in attachment_count
)

// trigger is an event found while applying a chunk; its payload is built
// once the whole chunk is applied, so it shows the rows as of the chunk's
// end (the commit, for a transaction that fits in one chunk).
type trigger struct {
	event  string
	st     *ticketState
	thread *change.Row // reply/commented: the thread row (of the batch being mapped)
	userID int64       // reply/commented: thread.user_id
}

// New builds a Mapper. cfg gets its defaults and is validated.
func New(cfg Config, src Source, opts Options) (*Mapper, error) {
	cfg.SetDefaults()
	if err := cfg.Validate("faveo"); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("mapping: a Source is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("mapping: registering metrics: %w", err)
	}
	m := &Mapper{
		cfg: cfg, src: src, log: log, metrics: met,
		tables: map[string]tableKind{
			cfg.Tables.Tickets: tableTickets, cfg.Tables.Threads: tableThreads, cfg.Tables.Users: tableUsers,
			cfg.Tables.Statuses: tableStatuses, cfg.Tables.StatusTypes: tableStatusTypes,
			cfg.Tables.Departments: tableIgnored, cfg.Tables.Teams: tableIgnored,
			cfg.Tables.Collaborators: tableCollaborators, cfg.Tables.Attachments: tableAttachments,
		},
		shape:         newShapeCheck(cfg.Tables),
		threadTickets: newLRU[int64](recentThreads),
		factsGen:      1,
		tickets:       newTicketLRU(cfg),
		users:         newUserLRU(cfg),
		statuses:      newLRU[*statusEntry](cfg.StateSize),
		types:         newLRU[[]byte](cfg.StateSize),
		local:         map[int64]*ticketState{},
		chunkUsers:    map[int64]*userEntry{},
		chunkStatus:   map[int64]*statusEntry{},
		chunkTypes:    map[int64][]byte{},
		shapes:        shapes{},
		posters:       map[string]string{},
	}
	if cfg.AppKey != "" {
		if m.enc, err = newIDEncrypter(cfg.AppKey); err != nil {
			return nil, fmt.Errorf("faveo.app_key: %w", err)
		}
	}
	return m, nil
}

// Reset forgets all state, as if the mapper were new. The daemon calls it
// when it restarts the stream after an error: a Map that failed half-way
// may have applied part of its batch, and the stream hands that batch over
// again. Rows are read from the source again as they are needed.
func (m *Mapper) Reset() {
	size := m.cfg.StateSize
	m.tickets = newTicketLRU(m.cfg)
	m.users = newUserLRU(m.cfg)
	m.statuses = newLRU[*statusEntry](size)
	m.types = newLRU[[]byte](size)
	m.threadTickets = newLRU[int64](recentThreads)
	m.pos, m.seq, m.index, m.chunkStart, m.threadMark = 0, 0, 0, 0, 0
	m.metrics.tickets.Set(0)
	m.metrics.bytes.Set(0)
}

// badRowError marks a change the mapper cannot use: it is logged, counted
// and skipped, and the stream goes on. Other errors (the source failing,
// ctx ending) stop Map.
type badRowError struct{ reason string }

func (e *badRowError) Error() string { return e.reason }

func badRow(format string, args ...any) error {
	return &badRowError{fmt.Sprintf(format, args...)}
}

// Map returns the events of one batch, in commit order, numbered within the
// batch's transaction (chunk Seq 0 starts at index 0; later chunks go on;
// a trigger that fires nothing, its ticket being gone, leaves a gap).
// Calling it again with the same batch after an error maps it again with
// the same indexes. A row it cannot use is logged, counted in
// deskhook_mapping_bad_rows_total and skipped; an error means the source
// could not be read (or ctx ended), and nothing of the batch was emitted.
func (m *Mapper) Map(ctx context.Context, b *change.Batch) ([]Event, error) {
	var all []Event
	rest, err := m.MapGroups(ctx, b, func(events []Event) error {
		all = append(all, events...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if all == nil {
		return rest, nil
	}
	return append(all, rest...), nil
}

// MapGroups maps a batch as Map does, in bounded memory: whenever the
// events built so far have payloads of Config.OutputBytes or more, it hands
// them to emit (which owns them), and returns the last group. A batch's
// events can be far larger than its rows (every reply carries its ticket's
// first thread), so a caller that stores each group before the next is
// built holds about OutputBytes of them, plus one event, whatever the
// batch. An error of emit stops it and is returned as is; mapping errors
// come before the first group, as for Map.
func (m *Mapper) MapGroups(ctx context.Context, b *change.Batch, emit func([]Event) error) ([]Event, error) {
	if b == nil {
		return nil, errors.New("mapping: nil batch")
	}
	switch {
	case b.Seq == 0:
		m.index, m.chunkStart = 0, 0
	case b.Pos != m.pos:
		// A later chunk of a transaction whose first chunks this mapper
		// never saw: the indexes of those are unknown. Sources hand whole
		// transactions over after a restart, so this is a bug upstream.
		m.log.Error("mapping: chunk of a transaction whose first chunk was not mapped; numbering its events from 0",
			"pos", b.Pos.String(), "seq", b.Seq)
		m.index, m.chunkStart = 0, 0
	case b.Seq == m.seq:
		m.index = m.chunkStart // the same chunk again
	default:
		m.chunkStart = m.index
	}
	m.pos, m.seq = b.Pos, b.Seq
	defer m.release()

	if err := m.prefetchTickets(ctx, b); err != nil {
		return nil, err
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Op != change.Truncate {
			if lack := m.shape.missing(c.Table); lack != "" {
				m.lackingRow(c.Table.Name, lack, b.Pos.String())
				continue
			}
		}
		if err := m.apply(ctx, c); err != nil {
			var bad *badRowError
			if !errors.As(err, &bad) {
				return nil, err
			}
			m.badRow(b, c, err)
		}
	}
	if err := m.resolve(ctx); err != nil {
		return nil, err
	}
	events := make([]Event, 0, len(m.triggers))
	groupBytes := 0
	for i := range m.triggers {
		tr := &m.triggers[i]
		st := tr.st
		// A skipped trigger still takes its index: the triggers follow from
		// the rows alone, but whether a ticket is found can change between
		// a first mapping and a replay after a crash (it may be deleted in
		// between). Events are sent only once stored, so a replay maps only
		// transactions none of whose events left; keeping the indexes fixed
		// all the same means an event's id never depends on such a lookup.
		index := m.index
		m.index++
		if st.deleted || st.notFound || !st.rowKnown {
			continue // the ticket is gone as of the commit: deleted tickets fire nothing
		}
		payload := m.build(tr)
		events = append(events, Event{
			ID: EventID(b.Pos, index), Type: tr.event, Pos: b.Pos, Index: index,
			CommitTime: b.CommitTime, TicketID: st.id, DeptID: st.deptID, SourceID: st.sourceID,
			Payload: payload,
		})
		m.metrics.mapped[tr.event].Inc()
		if groupBytes += len(payload); groupBytes >= m.cfg.OutputBytes && i+1 < len(m.triggers) {
			if err := emit(events); err != nil {
				return nil, err
			}
			events, groupBytes = make([]Event, 0, len(m.triggers)-i-1), 0
		}
	}
	return events, nil
}

// release lets go of what the chunk pinned: the next batch may be a while.
func (m *Mapper) release() {
	clear(m.triggers)
	m.triggers = m.triggers[:0]
	for id := range m.local {
		m.tickets.resize(id) // its row and facts may have grown
	}
	clear(m.local)
	clear(m.chunkUsers)
	clear(m.chunkStatus)
	clear(m.chunkTypes)
	m.metrics.tickets.Set(float64(m.tickets.len()))
	m.metrics.bytes.Set(float64(m.tickets.bytes + m.users.bytes))
}

func (m *Mapper) badRow(b *change.Batch, c *change.Change, err error) {
	table := "?"
	if c.Table != nil {
		table = c.Table.Name
	}
	m.metrics.badRows.WithLabelValues(table).Inc()
	row := c.New
	if row == nil {
		row = c.Old
	}
	id, _ := rowInt(row, "id")
	m.log.Warn("mapping: skipped a row change it cannot use", "table", table, "op", c.Op.String(),
		"id", id, "pos", b.Pos.String(), "xid", b.Xid, "error", err.Error())
}

// lackingRow counts a row skipped because its table lacks columns the
// mapping reads (renamed or dropped: the event it would make cannot be
// told), and logs it, at most once a minute per table.
func (m *Mapper) lackingRow(table, missing, pos string) {
	m.metrics.badRows.WithLabelValues(table).Inc()
	log, n := m.shape.skipped(table, time.Now())
	if !log {
		return
	}
	args := []any{"table", table, "missing", missing, "rows", n}
	if pos != "" {
		args = append(args, "pos", pos)
	}
	m.log.Warn("mapping: skipped row changes of a table that lacks columns the mapping reads "+
		"(deskhook_mapping_bad_rows_total counts them; deskhook check says what to fix)", args...)
}

func (m *Mapper) kind(c *change.Change) tableKind {
	if c.Table == nil {
		return tableOther
	}
	return m.tables[c.Table.Name]
}

// ticket returns the state of a ticket pinned in this chunk or held in the
// LRU, or nil.
func (m *Mapper) ticket(id int64) *ticketState {
	if st, ok := m.local[id]; ok {
		return st
	}
	if st, ok := m.tickets.get(id); ok {
		m.local[id] = st
		return st
	}
	return nil
}

func (m *Mapper) keepTicket(st *ticketState) {
	m.local[st.id] = st
	m.tickets.put(st.id, st)
}

// prefetchTickets reads, in one round, the tickets this chunk's
// non-internal thread inserts refer to and the state lacks (the row and
// thread facts), so that a chunk of many unknown tickets costs a few queries
// rather than one per row.
func (m *Mapper) prefetchTickets(ctx context.Context, b *change.Batch) error {
	var need []int64
	inserted := map[int64]bool{}
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Op == change.Insert && m.kind(c) == tableThreads {
			if id, ok := rowInt(c.New, "id"); ok {
				m.threadMark = max(m.threadMark, id)
			}
		}
		switch {
		case c.Op == change.Insert && m.kind(c) == tableTickets:
			if id, ok := rowInt(c.New, "id"); ok {
				inserted[id] = true
			}
		case c.Op == change.Insert && m.kind(c) == tableThreads:
			tid, ok := rowInt(c.New, "ticket_id")
			if !ok || inserted[tid] || isInternal(c.New) {
				continue
			}
			if !m.complete(m.ticket(tid)) {
				need = append(need, tid)
			}
		}
	}
	return m.fetchTickets(ctx, need)
}

// factsKnown reports whether a ticket's thread facts are current.
func (m *Mapper) factsKnown(st *ticketState) bool { return st.factsGen == m.factsGen }

// complete reports whether a ticket's state has all a payload needs.
func (m *Mapper) complete(st *ticketState) bool {
	return st != nil && m.factsKnown(st) && (st.rowKnown || st.notFound)
}

// fetchTickets reads from the source what the states of tickets ids lack:
// the tickets row and/or the thread facts (bounded by the current thread
// mark).
func (m *Mapper) fetchTickets(ctx context.Context, ids []int64) error {
	needs := make([]ticketNeed, len(ids))
	for i, id := range ids {
		needs[i] = ticketNeed{id: id, mark: m.threadMark, row: true}
	}
	return m.fetchNeeds(ctx, needs)
}

// ticketNeed is a ticket whose state may lack what a payload needs.
type ticketNeed struct {
	id int64
	// mark bounds the threads its facts count: the thread mark as of the
	// transaction that needs them.
	mark int64
	// row: its tickets row may be needed too (false when the change that
	// needs it brings the row).
	row bool
}

// fetchNeeds reads, in one round, what the states of the tickets in needs
// lack: rows and thread facts. A ticket listed twice is read once, for its
// first need.
func (m *Mapper) fetchNeeds(ctx context.Context, needs []ticketNeed) error {
	var rowIDs []int64
	var queries []FactsQuery
	seenRow, seenFacts := map[int64]bool{}, map[int64]bool{}
	for _, n := range needs {
		st := m.ticket(n.id)
		if n.row && !seenRow[n.id] && (st == nil || !(st.rowKnown || st.notFound)) {
			seenRow[n.id] = true
			rowIDs = append(rowIDs, n.id)
		}
		if !seenFacts[n.id] && (st == nil || !m.factsKnown(st)) {
			seenFacts[n.id] = true
			queries = append(queries, FactsQuery{TicketID: n.id, MaxThreadID: n.mark})
		}
	}
	slices.Sort(rowIDs)
	var facts map[int64]TicketFacts
	if len(queries) > 0 {
		var err error
		facts, err = ReadTicketFacts(ctx, m.src, m.cfg.Tables, queries)
		if err != nil {
			return fmt.Errorf("mapping: reading thread facts of %d ticket(s) from the source: %w", len(queries), err)
		}
		m.metrics.lookups.WithLabelValues(m.cfg.Tables.Threads).Add(float64(len(queries)))
	}
	var rows map[int64]*change.Row
	if len(rowIDs) > 0 {
		var err error
		if rows, err = m.fetchRows(ctx, m.cfg.Tables.Tickets, rowIDs); err != nil {
			return err
		}
	}
	update := func(id int64, f func(st *ticketState)) {
		st := m.ticket(id)
		if st == nil {
			st = &ticketState{id: id}
		}
		f(st)
		m.keepTicket(st)
	}
	for _, id := range rowIDs {
		update(id, func(st *ticketState) {
			if row, ok := rows[id]; ok {
				m.setRow(st, row, true)
			} else {
				st.notFound = true
			}
		})
	}
	for _, q := range queries {
		update(q.TicketID, func(st *ticketState) { m.setFacts(st, facts[q.TicketID]) })
	}
	return nil
}

// fetchRows reads rows of table by id, keyed by id.
func (m *Mapper) fetchRows(ctx context.Context, table string, ids []int64) (map[int64]*change.Row, error) {
	rows, err := m.src.Rows(ctx, table, ids)
	if err != nil {
		return nil, fmt.Errorf("mapping: reading %d row(s) of %s from the source: %w", len(ids), table, err)
	}
	m.metrics.lookups.WithLabelValues(table).Add(float64(len(ids)))
	out := make(map[int64]*change.Row, len(rows))
	for _, r := range rows {
		if lack := m.shape.missing(r.Table); lack != "" {
			m.lackingRow(table, lack, "")
			continue // as if there were no such row: its events are dropped, loudly
		}
		if id, ok := rowInt(r, "id"); ok {
			out[id] = r
		} else {
			m.metrics.badRows.WithLabelValues(table).Inc()
			m.log.Warn("mapping: the source returned a row without an integer id", "table", table)
		}
	}
	return out, nil
}

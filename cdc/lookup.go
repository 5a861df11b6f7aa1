package cdc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Lookup reads helpdesk rows by primary key: the mapping.Source for rows
// the mapper has not seen in the stream. Values are fetched in PostgreSQL's
// text format and decoded by decodeValue, exactly as the stream decodes
// pgoutput's text tuples, so a looked-up row renders byte for byte like a
// streamed one. It only reads.
type Lookup struct {
	pool    *pgxpool.Pool
	cfg     Config
	opts    LookupOptions
	typeMap *pgtype.Map

	factsQuery string // TicketFacts' statement

	mu     sync.Mutex
	tables map[string]*change.Table // last shape seen per table, shared by its rows
}

var _ mapping.Source = (*Lookup)(nil)

// LookupOptions tune a Lookup. The tables it reads are the configured
// source.tables (collaborators and attachments are counted for the ticket
// appends collaborator_count and attachment_count).
type LookupOptions struct {
	// MaxConns bounds the pool; default 4.
	MaxConns int32
}

// NewLookup opens a small connection pool to cfg.DSN. Dates come back in
// ISO style whatever the server's DateStyle, as on the replication
// connection. Close it when done.
func NewLookup(ctx context.Context, cfg Config, opts LookupOptions) (*Lookup, error) {
	cfg.SetDefaults()
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cdc: source.dsn is not a valid connection string (%s)", RedactDSN(cfg.DSN))
	}
	pc.MaxConns = opts.MaxConns
	pc.ConnConfig.RuntimeParams["DateStyle"] = "ISO"
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "deskhook-lookup"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("cdc: lookup pool: %w", err)
	}
	l := &Lookup{pool: pool, cfg: cfg, opts: opts, typeMap: pgtype.NewMap(), tables: map[string]*change.Table{}}
	l.factsQuery = l.factsSQL()
	return l, nil
}

// Close closes the pool.
func (l *Lookup) Close() { l.pool.Close() }

// Rows returns the rows of table (in the configured schema) whose id is in
// ids.
func (l *Lookup) Rows(ctx context.Context, table string, ids []int64) ([]*change.Row, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q := "SELECT * FROM " + l.cfg.qualified(table) + " WHERE id = ANY($1) ORDER BY id"
	rows, err := l.pool.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode}, ids)
	if err != nil {
		return nil, fmt.Errorf("cdc: lookup in %s: %w", l.cfg.displayName(table), err)
	}
	out, err := l.collect(rows, table)
	if err != nil {
		return nil, fmt.Errorf("cdc: lookup in %s: %w", l.cfg.displayName(table), err)
	}
	return out, nil
}

// collect decodes text-format result rows into change rows of table.
func (l *Lookup) collect(rows pgx.Rows, table string) ([]*change.Row, error) {
	defer rows.Close()
	var out []*change.Row
	var t *change.Table
	var oids []uint32
	for rows.Next() {
		if t == nil {
			t, oids = l.tableFor(table, rows.FieldDescriptions())
		}
		out = append(out, decodeRow(t, oids, rows.RawValues()))
	}
	return out, rows.Err()
}

// decodeRow decodes one text-format result row. The values' text shares
// one string per row (one allocation rather than one per column), as the
// stream's share one per message.
func decodeRow(t *change.Table, oids []uint32, raw [][]byte) *change.Row {
	n := 0
	for _, b := range raw {
		n += len(b)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, b := range raw {
		sb.Write(b)
	}
	all := sb.String()
	vals := make([]change.Value, len(raw))
	off := 0
	for i, b := range raw {
		if b == nil {
			vals[i] = change.Value{Kind: change.KindNull}
			continue
		}
		vals[i] = decodeValue(oids[i], all[off:off+len(b)])
		off += len(b)
	}
	return &change.Row{Table: t, Values: vals}
}

// tableFor returns the change.Table for a result's columns, reusing the
// last one built for table while its shape holds.
func (l *Lookup) tableFor(table string, fields []pgconn.FieldDescription) (*change.Table, []uint32) {
	oids := make([]uint32, len(fields))
	cols := make([]change.Column, len(fields))
	for i, f := range fields {
		oids[i] = f.DataTypeOID
		name := "oid:" + fmt.Sprint(f.DataTypeOID)
		if typ, ok := l.typeMap.TypeForOID(f.DataTypeOID); ok {
			name = typ.Name
		}
		// Key marks the primary key ("id" in every table deskhook reads);
		// the stream marks the replica identity instead.
		cols[i] = change.Column{Name: f.Name, Type: name, Key: f.Name == "id"}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.tables[table]; t != nil && slices.Equal(t.Columns, cols) {
		return t, oids
	}
	t := change.NewTable(l.cfg.Schema, table, cols)
	l.tables[table] = t
	return t, oids
}

// TicketFacts reads each ticket's first non-internal thread, its
// non-internal thread count, the poster of its last non-internal thread,
// its highest thread id, and its collaborator and attachment counts; of
// the threads up to the query's MaxThreadID only, when it is > 0
// (collaborators, which have no such order, are all counted). As in
// Faveo's Tickets model, collaborators count only when their user has an
// email, and attachments of internal threads count too.
//
// It is one statement, so one round trip and one snapshot (a statement
// sees one snapshot without an explicit transaction).
func (l *Lookup) TicketFacts(ctx context.Context, qs []mapping.FactsQuery) (map[int64]mapping.TicketFacts, error) {
	out := make(map[int64]mapping.TicketFacts, len(qs))
	if len(qs) == 0 {
		return out, nil
	}
	ids, marks := make([]int64, 0, len(qs)), make([]int64, 0, len(qs))
	for _, q := range qs {
		if _, dup := out[q.TicketID]; dup {
			continue // asked twice: the first query counts (duplicates would count twice)
		}
		out[q.TicketID] = mapping.TicketFacts{}
		ids, marks = append(ids, q.TicketID), append(marks, q.MaxThreadID)
	}
	rows, err := l.pool.Query(ctx, l.factsQuery, pgx.QueryResultFormats{pgx.TextFormatCode}, ids, marks)
	if err != nil {
		return nil, l.factsErr(err)
	}
	defer rows.Close()
	// ticket_id, count, max id, poster, collaborators, attachments, and
	// whether a first thread was found (its own first column may be NULL
	// in a table laid out otherwise than Faveo's).
	const fixed = 7
	var t *change.Table
	var oids []uint32
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) < fixed+1 {
			return nil, l.factsErr(fmt.Errorf("%d columns in the answer", len(raw)))
		}
		num := func(i int) int64 {
			n, perr := strconv.ParseInt(string(raw[i]), 10, 64)
			if perr != nil && err == nil {
				err = fmt.Errorf("column %d: %q is not an integer", i+1, raw[i])
			}
			return n
		}
		id := num(0)
		f := mapping.TicketFacts{ThreadCount: num(1), MaxThreadID: num(2), LastPoster: string(raw[3]),
			CollaboratorCount: num(4), AttachmentCount: num(5)}
		if string(raw[fixed-1]) == "t" {
			if t == nil {
				t, oids = l.tableFor(l.cfg.Tables.Threads, rows.FieldDescriptions()[fixed:])
			}
			f.FirstThread = decodeRow(t, oids, raw[fixed:])
		}
		out[id] = f
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return nil, l.factsErr(err)
	}
	return out, nil
}

func (l *Lookup) factsErr(err error) error {
	t := l.cfg.Tables
	return fmt.Errorf("cdc: ticket facts from %s, %s, %s, %s: %w", l.cfg.displayName(t.Threads),
		l.cfg.displayName(t.Collaborators), l.cfg.displayName(t.Users), l.cfg.displayName(t.Attachments), err)
}

// factsSQL is TicketFacts' statement: $1 the ticket ids, $2 each one's
// bound on thread ids (0: none). The thread aggregates find the first and
// last public threads' ids, read back by primary key; every column comes
// in text format, the first thread's as the stream would send them.
func (l *Lookup) factsSQL() string {
	threads := l.cfg.qualified(l.cfg.Tables.Threads)
	const public = "COALESCE(t.is_internal::int, 0) = 0"
	upTo := `JOIN ` + threads + ` t ON t.ticket_id = q.ticket_id AND (q.mark = 0 OR t.id <= q.mark)`
	sql := `WITH q AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS q(ticket_id, mark)),
	th AS (SELECT q.ticket_id, count(*) FILTER (WHERE ` + public + `) AS n, max(t.id) AS max_id,
			min(t.id) FILTER (WHERE ` + public + `) AS first_id, max(t.id) FILTER (WHERE ` + public + `) AS last_id
		FROM q ` + upTo + ` GROUP BY q.ticket_id)`
	// As Faveo's collaborator_count: collaborators whose user has an
	// email. Attachments of every thread up to the mark, internal ones too.
	return sql + `,
	co AS (SELECT c.ticket_id, count(*) AS n FROM ` + l.cfg.qualified(l.cfg.Tables.Collaborators) + ` c
		JOIN ` + l.cfg.qualified(l.cfg.Tables.Users) + ` u ON u.id = c.user_id
		WHERE c.ticket_id = ANY($1) AND u.email <> '' GROUP BY c.ticket_id),
	ac AS (SELECT q.ticket_id, count(*) AS n FROM q ` + upTo + `
		JOIN ` + l.cfg.qualified(l.cfg.Tables.Attachments) + ` a ON a.thread_id = t.id GROUP BY q.ticket_id)
	SELECT q.ticket_id, COALESCE(th.n, 0), COALESCE(th.max_id, 0), COALESCE(lp.poster, ''),
		COALESCE(co.n, 0), COALESCE(ac.n, 0), f.id IS NOT NULL, f.*
	FROM q LEFT JOIN th ON th.ticket_id = q.ticket_id
		LEFT JOIN ` + threads + ` lp ON lp.id = th.last_id
		LEFT JOIN ` + threads + ` f ON f.id = th.first_id
		LEFT JOIN co ON co.ticket_id = q.ticket_id
		LEFT JOIN ac ON ac.ticket_id = q.ticket_id`
}

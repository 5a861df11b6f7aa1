package cdc

import (
	"context"
	"fmt"
	"slices"
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

	mu     sync.Mutex
	tables map[string]*change.Table // last shape seen per table, shared by its rows
}

var _ mapping.Source = (*Lookup)(nil)

// LookupOptions tune a Lookup.
type LookupOptions struct {
	// Collaborators and Attachments name Faveo's ticket_collaborator and
	// ticket_attachments tables (in the configured schema), counted for the
	// ticket appends collaborator_count and attachment_count. Empty: those
	// names; "-": not counted (always 0).
	Collaborators string
	Attachments   string
	// MaxConns bounds the pool; default 4.
	MaxConns int32
}

// NewLookup opens a small connection pool to cfg.DSN. Dates come back in
// ISO style whatever the server's DateStyle, as on the replication
// connection. Close it when done.
func NewLookup(ctx context.Context, cfg Config, opts LookupOptions) (*Lookup, error) {
	cfg.SetDefaults()
	if opts.Collaborators == "" {
		opts.Collaborators = "ticket_collaborator"
	}
	if opts.Attachments == "" {
		opts.Attachments = "ticket_attachments"
	}
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
	return &Lookup{pool: pool, cfg: cfg, opts: opts, typeMap: pgtype.NewMap(), tables: map[string]*change.Table{}}, nil
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
		raw := rows.RawValues()
		vals := make([]change.Value, len(raw))
		for i, b := range raw {
			if b == nil {
				vals[i] = change.Value{Kind: change.KindNull}
				continue
			}
			vals[i] = decodeValue(oids[i], string(b))
		}
		out = append(out, &change.Row{Table: t, Values: vals})
	}
	return out, rows.Err()
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

// TicketFacts reads, in one consistent snapshot, each ticket's first
// non-internal thread, its non-internal thread count, the poster of its last
// non-internal thread, its highest thread id, and its collaborator and
// attachment counts; with maxThreadID > 0, of the threads up to that id
// only (collaborators, which have no such order, are all counted). As in
// Faveo's Tickets model, collaborators count only when their user has an
// email, and attachments of internal threads count too.
func (l *Lookup) TicketFacts(ctx context.Context, ticketIDs []int64, maxThreadID int64) (map[int64]mapping.TicketFacts, error) {
	out := make(map[int64]mapping.TicketFacts, len(ticketIDs))
	if len(ticketIDs) == 0 {
		return out, nil
	}
	threads := l.cfg.qualified(l.cfg.Tables.Threads)
	const public = "COALESCE(is_internal::int, 0) = 0"
	const upTo = "($2::bigint = 0 OR id <= $2::bigint)"
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT ticket_id, count(*) FILTER (WHERE `+public+`), COALESCE(max(id), 0),
					COALESCE((array_agg(poster ORDER BY id DESC) FILTER (WHERE `+public+`))[1], '')
				FROM `+threads+` WHERE ticket_id = ANY($1) AND `+upTo+` GROUP BY ticket_id`, ticketIDs, maxThreadID)
			if err != nil {
				return err
			}
			var id int64
			var f mapping.TicketFacts
			_, err = pgx.ForEachRow(rows, []any{&id, &f.ThreadCount, &f.MaxThreadID, &f.LastPoster}, func() error {
				out[id] = f
				return nil
			})
			if err != nil {
				return err
			}

			rows, err = tx.Query(ctx, `SELECT DISTINCT ON (ticket_id) * FROM `+threads+`
				WHERE ticket_id = ANY($1) AND `+public+` AND `+upTo+` ORDER BY ticket_id, id`,
				pgx.QueryResultFormats{pgx.TextFormatCode}, ticketIDs, maxThreadID)
			if err != nil {
				return err
			}
			firsts, err := l.collect(rows, l.cfg.Tables.Threads)
			if err != nil {
				return err
			}
			for _, r := range firsts {
				tid, ok := r.Int("ticket_id")
				if !ok {
					continue
				}
				f := out[tid]
				f.FirstThread = r
				out[tid] = f
			}

			count := func(q string, set func(*mapping.TicketFacts, int64), args ...any) error {
				rows, err := tx.Query(ctx, q, append([]any{ticketIDs}, args...)...)
				if err != nil {
					return err
				}
				var id, n int64
				_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
					f := out[id]
					set(&f, n)
					out[id] = f
					return nil
				})
				return err
			}
			if l.opts.Collaborators != "-" {
				// As Faveo's collaborator_count: collaborators whose user has
				// an email.
				err := count(`SELECT c.ticket_id, count(*) FROM `+l.cfg.qualified(l.opts.Collaborators)+` c
					JOIN `+l.cfg.qualified(l.cfg.Tables.Users)+` u ON u.id = c.user_id
					WHERE c.ticket_id = ANY($1) AND u.email <> '' GROUP BY c.ticket_id`,
					func(f *mapping.TicketFacts, n int64) { f.CollaboratorCount = n })
				if err != nil {
					return fmt.Errorf("counting collaborators in %s: %w", l.cfg.displayName(l.opts.Collaborators), err)
				}
			}
			if l.opts.Attachments != "-" {
				err := count(`SELECT t.ticket_id, count(*) FROM `+l.cfg.qualified(l.opts.Attachments)+` a
					JOIN `+threads+` t ON t.id = a.thread_id
					WHERE t.ticket_id = ANY($1) AND ($2::bigint = 0 OR t.id <= $2::bigint) GROUP BY t.ticket_id`,
					func(f *mapping.TicketFacts, n int64) { f.AttachmentCount = n }, maxThreadID)
				if err != nil {
					return fmt.Errorf("counting attachments in %s: %w", l.cfg.displayName(l.opts.Attachments), err)
				}
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("cdc: ticket facts from %s: %w", l.cfg.displayName(l.cfg.Tables.Threads), err)
	}
	for _, id := range ticketIDs {
		if _, ok := out[id]; !ok {
			out[id] = mapping.TicketFacts{}
		}
	}
	return out, nil
}

package cdc

import (
	"context"
	"fmt"
	"slices"
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

// decodeRow decodes one text-format result row.
func decodeRow(t *change.Table, oids []uint32, raw [][]byte) *change.Row {
	return change.TextRow(t, raw, func(i int, s string) change.Value { return decodeValue(oids[i], s) })
}

// tableFor returns the change.Table for a result's columns, reusing the
// last one built for table while its shape holds.
func (l *Lookup) tableFor(table string, fields []pgconn.FieldDescription) (*change.Table, []uint32) {
	return l.tableAs(table, table, fields)
}

// tableAs is tableFor keeping the table under key: a read of some of a
// table's columns keeps its own, so that it and the whole rows do not
// replace each other's.
func (l *Lookup) tableAs(key, table string, fields []pgconn.FieldDescription) (*change.Table, []uint32) {
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
	if t := l.tables[key]; t != nil && slices.Equal(t.Columns, cols) {
		return t, oids
	}
	t := change.NewTable(l.cfg.Schema, table, cols)
	l.tables[key] = t
	return t, oids
}

// Aggregate answers an aggregate read of the mapping (mapping.Aggregate:
// Faveo's thread and collaborator counts are written there) in one
// statement, so one round trip and one snapshot (a statement sees one
// snapshot without an explicit transaction). Every column comes in text
// format, fetched rows decoded as the stream would send them.
func (l *Lookup) Aggregate(ctx context.Context, a mapping.Aggregate) (map[int64]mapping.AggregateRow, error) {
	out := make(map[int64]mapping.AggregateRow, len(a.Keys))
	if len(a.Keys) == 0 {
		return out, nil
	}
	keys, bounds := make([]int64, len(a.Keys)), make([]int64, len(a.Keys))
	for i, k := range a.Keys {
		keys[i], bounds[i] = k.Value, k.Bound
	}
	q := a.SQL(pgDialect(l.cfg), "SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS q(k, b)")
	rows, err := l.pool.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode}, keys, bounds)
	if err != nil {
		return nil, l.aggregateErr(a, err)
	}
	defer rows.Close()
	tables := make([]*change.Table, len(a.Fetch))
	oids := make([][]uint32, len(a.Fetch))
	var fields []pgconn.FieldDescription
	var spans [][2]int
	for rows.Next() {
		if spans == nil {
			// Known once a row came: a statement that failed (a
			// permission missing) has none, and says why in rows.Err.
			fields = rows.FieldDescriptions()
			var ok bool
			if spans, ok = a.FetchSpans(len(fields)); !ok {
				return nil, l.aggregateErr(a, fmt.Errorf("%d columns in the answer", len(fields)))
			}
		}
		key, r, err := a.DecodeRow(rows.RawValues(), spans, func(i int, cols [][]byte) *change.Row {
			if tables[i] == nil {
				sp := spans[i]
				tables[i], oids[i] = l.tableAs(a.Fetch[i].Key(), a.Fetch[i].Table, fields[sp[0]:sp[1]])
			}
			return decodeRow(tables[i], oids[i], cols)
		})
		if err != nil {
			return nil, l.aggregateErr(a, err)
		}
		out[key] = r
	}
	if err := rows.Err(); err != nil {
		return nil, l.aggregateErr(a, err)
	}
	return out, nil
}

func (l *Lookup) aggregateErr(a mapping.Aggregate, err error) error {
	names := a.Tables()
	for i, t := range names {
		names[i] = l.cfg.displayName(t)
	}
	return fmt.Errorf("cdc: reading from %s: %w", strings.Join(names, ", "), err)
}

// pgDialect is PostgreSQL for mapping.Aggregate's statements: tables in
// the configured schema; a column that may be boolean or an integer is
// cast to int to test it for 0.
func pgDialect(cfg Config) mapping.SQLDialect {
	return mapping.SQLDialect{
		Table:  cfg.qualified,
		Ident:  quoteIdent,
		IsZero: func(e string) string { return "COALESCE(" + e + "::int, 0) = 0" },
	}
}

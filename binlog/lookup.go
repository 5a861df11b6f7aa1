package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// Lookup reads helpdesk rows by primary key: the mapping.Source for rows
// the mapper has not seen in the stream. Values come through the client's
// text protocol — what PDO gets — in a session of time zone +00:00, and
// TIMESTAMP columns are then rendered in the helpdesk's time zone by the
// same rule as the stream's, so a looked-up row renders byte for byte like
// a streamed one (whatever time zones the server can name). It only reads.
type Lookup struct {
	db   *sql.DB
	cfg  Config
	opts LookupOptions
	name string // the database
	loc  *time.Location

	zoneMu sync.Mutex // guards setting loc
	mu     sync.Mutex
	tables map[string]*change.Table
}

var _ mapping.Source = (*Lookup)(nil)

// LookupOptions tune a Lookup.
type LookupOptions struct {
	// MaxConns bounds the pool; default 4.
	MaxConns int
}

// NewLookup opens a small pool to cfg.DSN; the helpdesk's time zone
// (source.time_zone, or the server's) is resolved when first needed. Close
// it when done.
func NewLookup(ctx context.Context, cfg Config, opts LookupOptions) (*Lookup, error) {
	cfg.SetDefaults()
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	mc, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("binlog: source.dsn: %w (%s)", err, RedactDSN(cfg.DSN))
	}
	mc = mc.Clone()
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	if err := mc.Apply(mysql.Charset("utf8mb4", "utf8mb4_general_ci")); err != nil {
		return nil, err
	}
	mc.ParseTime, mc.InterpolateParams = false, true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("binlog: source.dsn: %w (%s)", err, RedactDSN(cfg.DSN))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(opts.MaxConns)
	l := &Lookup{db: db, cfg: cfg, opts: opts, name: mc.DBName, tables: map[string]*change.Table{}}
	if cfg.TimeZone != "" {
		if l.loc, err = zoneByName(cfg.TimeZone); err != nil {
			db.Close()
			return nil, fmt.Errorf("binlog: lookup: the helpdesk's time zone: %w", err)
		}
	}
	return l, nil
}

// zone resolves the helpdesk's time zone the first time it is needed
// (source.time_zone, else the server's), so that a Lookup can be made
// while the server is down.
func (l *Lookup) zone(ctx context.Context) error {
	l.zoneMu.Lock()
	defer l.zoneMu.Unlock()
	if l.loc != nil {
		return nil
	}
	info, err := readServerInfo(ctx, l.db)
	if err == nil {
		l.loc, err = serverZone(info.timeZone, info.systemZone)
	}
	if err != nil {
		return fmt.Errorf("binlog: lookup: the helpdesk's time zone: %w", err)
	}
	return nil
}

// Close closes the pool.
func (l *Lookup) Close() { l.db.Close() }

func (l *Lookup) qualified(table string) string { return quoteIdent(l.name) + "." + quoteIdent(table) }

// idList writes ids as a SQL list (integers only: nothing to escape).
func idList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// Rows returns the rows of table whose id is in ids.
func (l *Lookup) Rows(ctx context.Context, table string, ids []int64) ([]*change.Row, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := l.zone(ctx); err != nil {
		return nil, err
	}
	rows, err := l.db.QueryContext(ctx, "SELECT * FROM "+l.qualified(table)+" WHERE id IN ("+idList(ids)+") ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("binlog: lookup in %s.%s: %w", l.name, table, err)
	}
	defer rows.Close()
	var out []*change.Row
	var t *change.Table
	var types []string
	for rows.Next() {
		if t == nil {
			if t, types, err = l.tableFor(table, rows); err != nil {
				return nil, err
			}
		}
		raw, err := scanRaw(rows, len(types))
		if err != nil {
			return nil, err
		}
		out = append(out, l.decodeRow(t, types, raw))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("binlog: lookup in %s.%s: %w", l.name, table, err)
	}
	return out, nil
}

// tableFor returns the change.Table for a result's columns, and their
// database types, reusing the last one built for table while its shape
// holds.
func (l *Lookup) tableFor(table string, rows *sql.Rows) (*change.Table, []string, error) {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, err
	}
	t, types := l.tableAs(table, table, cts)
	return t, types, nil
}

// tableAs is tableFor for the columns cts, keeping the table under key: a
// read of some of a table's columns keeps its own, so that it and the
// whole rows do not replace each other's.
func (l *Lookup) tableAs(key, table string, cts []*sql.ColumnType) (*change.Table, []string) {
	types := make([]string, len(cts))
	cols := make([]change.Column, len(cts))
	for i, ct := range cts {
		types[i] = ct.DatabaseTypeName()
		cols[i] = change.Column{Name: ct.Name(), Type: strings.ToLower(types[i]), Key: ct.Name() == "id"}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.tables[key]; t != nil && slices.Equal(t.Columns, cols) {
		return t, types
	}
	t := change.NewTable(l.name, table, cols)
	l.tables[key] = t
	return t, types
}

// Aggregate answers an aggregate read of the mapping (mapping.Aggregate:
// Faveo's thread and collaborator counts are written there) in one
// statement, so one round trip and one snapshot. It needs common table
// expressions (MySQL 8, MariaDB 10.2). Fetched rows are decoded as Rows
// decodes them.
func (l *Lookup) Aggregate(ctx context.Context, a mapping.Aggregate) (map[int64]mapping.AggregateRow, error) {
	out := make(map[int64]mapping.AggregateRow, len(a.Keys))
	if len(a.Keys) == 0 {
		return out, nil
	}
	if err := l.zone(ctx); err != nil {
		return nil, err
	}
	// The keys inline: integers only, nothing to escape.
	var keys strings.Builder
	for i, k := range a.Keys {
		if i > 0 {
			keys.WriteString(" UNION ALL ")
		}
		keys.WriteString("SELECT " + strconv.FormatInt(k.Value, 10) + " AS k, " + strconv.FormatInt(k.Bound, 10) + " AS b")
	}
	dialect := mapping.SQLDialect{Table: l.qualified, Ident: quoteIdent,
		IsZero: func(e string) string { return "COALESCE(" + e + ", 0) = 0" }}
	rows, err := l.db.QueryContext(ctx, a.SQL(dialect, keys.String()))
	if err != nil {
		return nil, l.aggregateErr(a, err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, l.aggregateErr(a, err)
	}
	spans, ok := a.FetchSpans(len(cts))
	if !ok {
		return nil, l.aggregateErr(a, fmt.Errorf("%d columns in the answer", len(cts)))
	}
	tables := make([]*change.Table, len(a.Fetch))
	types := make([][]string, len(a.Fetch))
	for i, f := range a.Fetch {
		tables[i], types[i] = l.tableAs(f.Key(), f.Table, cts[spans[i][0]:spans[i][1]])
	}
	for rows.Next() {
		raw, err := scanRaw(rows, len(cts))
		if err != nil {
			return nil, l.aggregateErr(a, err)
		}
		key, r, err := a.DecodeRow(raw, spans, func(i int, cols [][]byte) *change.Row {
			return l.decodeRow(tables[i], types[i], cols)
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
		names[i] = l.name + "." + t
	}
	return fmt.Errorf("binlog: reading from %s: %w", strings.Join(names, ", "), err)
}

// scanRaw scans the current row's n columns as their text (nil: NULL),
// valid until the next Next.
func scanRaw(rows *sql.Rows, n int) ([][]byte, error) {
	raw := make([]sql.RawBytes, n)
	dst := make([]any, n)
	for i := range raw {
		dst[i] = &raw[i]
	}
	if err := rows.Scan(dst...); err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i, b := range raw {
		out[i] = b
	}
	return out, nil
}

// decodeRow turns a text-protocol row into a change.Row, values rendered
// as the stream renders them.
func (l *Lookup) decodeRow(t *change.Table, types []string, raw [][]byte) *change.Row {
	return change.TextRow(t, raw, func(i int, s string) change.Value { return textValue(types[i], s, l.loc) })
}

// textValue is a value of the client's text protocol, of the database
// type go-sql-driver names, with the Kind the stream gives it. TIMESTAMP
// text comes in UTC (the session's zone) and is rendered in loc.
func textValue(dbType, s string, loc *time.Location) change.Value {
	v := change.Value{Kind: change.KindText, Text: s}
	switch strings.TrimPrefix(dbType, "UNSIGNED ") {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			v.Kind, v.Int = change.KindInt, n
		}
	case "DECIMAL", "FLOAT", "DOUBLE":
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			v.Kind, v.Float = change.KindFloat, f
		}
	case "BIT", "GEOMETRY":
		v.Kind = change.KindBytes
	case "TIMESTAMP":
		if t, ok := parseWallClock(s); ok {
			local := t.In(loc)
			v.Text = local.Format(fracLayout(s))
			v.Kind, v.Time = change.KindTime, time.Date(local.Year(), local.Month(), local.Day(), local.Hour(),
				local.Minute(), local.Second(), local.Nanosecond(), time.UTC)
		}
	case "DATETIME", "DATE":
		if t, ok := parseWallClock(s); ok {
			v.Kind, v.Time = change.KindTime, t
		}
	}
	return v
}

// fracLayout is the layout printing a time with as many fraction digits as
// s has.
func fracLayout(s string) string {
	const layout = "2006-01-02 15:04:05"
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return layout + "." + strings.Repeat("0", len(s)-i-1)
	}
	return layout
}

package cdc

// Verifying the helpdesk schema against what deskhook reads: every
// configured table present, readable, published; the replica identity the
// mapping needs; every column the mapping reads (mapping.Needs) present
// with a type it can read. `deskhook check` reports it; the daemon runs it
// again while it streams, so a table rebuilt by a migration (which drops it
// from the publication) or a renamed column is noticed within the interval.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/deskhook/deskhook/mapping"
)

// Problem is one way the source differs from what deskhook reads. Its
// Kind is one of missing, no_select, not_published, replica_identity,
// publication_missing, missing_column:NAME, column_type:NAME; Table is
// schema.table ("" for the publication as a whole).
type Problem = mapping.Problem

// Verify compares the source's schema with what deskhook reads and returns
// every difference, in a fixed order. It changes nothing. An error means
// it could not look (the connection failed); the problems are then
// unknown, not absent.
func Verify(ctx context.Context, cfg Config) ([]Problem, error) {
	cfg.SetDefaults()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	sc, err := inspect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("cdc: verifying the source: %w", err)
	}
	var out []Problem
	if !sc.pubExists {
		out = append(out, Problem{Kind: "publication_missing",
			Detail: fmt.Sprintf("publication %s does not exist: no change reaches deskhook", cfg.Publication),
			Fix:    "run deskhook setup"})
	}
	for _, t := range sc.tables {
		out = append(out, t.problems(cfg, sc)...)
	}
	return out, nil
}

// schemaState is what inspect saw.
type schemaState struct {
	user      string
	pubExists bool
	tables    []tableState
}

// tableState is one configured table as the catalog shows it.
type tableState struct {
	key, name string // source.tables key, table name
	need      mapping.TableNeed
	exists    bool
	canSelect bool
	published bool
	ident     string            // pg_class.relreplident
	cols      map[string]string // column name → type name (domains resolved to their base type)
}

// inspect reads the catalog for every configured table.
func inspect(ctx context.Context, conn *pgx.Conn, cfg Config) (schemaState, error) {
	var sc schemaState
	if err := conn.QueryRow(ctx, `SELECT current_user, EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`,
		cfg.Publication).Scan(&sc.user, &sc.pubExists); err != nil {
		return sc, err
	}
	keys := cfg.Tables.Keys()
	for i, name := range cfg.Tables.List() {
		t := tableState{key: keys[i], name: name, need: mapping.NeedsOf(keys[i])}
		q := cfg.qualified(name)
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
			coalesce(has_table_privilege(to_regclass($1), 'SELECT'), false),
			coalesce((SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)), ''),
			EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $2 AND schemaname = $3 AND tablename = $4)`,
			q, cfg.Publication, cfg.Schema, name).Scan(&t.exists, &t.canSelect, &t.ident, &t.published); err != nil {
			return sc, fmt.Errorf("table %s: %w", cfg.displayName(name), err)
		}
		if t.exists {
			cols, err := columnTypes(ctx, conn, q)
			if err != nil {
				return sc, fmt.Errorf("columns of %s: %w", cfg.displayName(name), err)
			}
			t.cols = cols
		}
		sc.tables = append(sc.tables, t)
	}
	return sc, nil
}

// columnTypes returns a table's columns and their types' names.
func columnTypes(ctx context.Context, conn *pgx.Conn, table string) (map[string]string, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname::text, CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END::text,
		CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END::text
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var name, typ, cat string
		if err := rows.Scan(&name, &typ, &cat); err != nil {
			return nil, err
		}
		if cat == "E" || (cat == "S" && pgFamilies[typ] == 0) {
			typ += "/string" // enums and string types beyond the built-in ones read as text
		}
		cols[name] = typ
	}
	return cols, rows.Err()
}

// pgFamilies maps PostgreSQL's type names to the mapping's type families.
var pgFamilies = map[string]mapping.TypeFamily{
	"int2": mapping.Integer, "int4": mapping.Integer, "int8": mapping.Integer,
	"text": mapping.Text, "varchar": mapping.Text, "bpchar": mapping.Text, "name": mapping.Text,
	"timestamp": mapping.Timestamp, "timestamptz": mapping.Timestamp, "date": mapping.Timestamp,
	"bool":  mapping.Boolean,
	"json":  mapping.JSON,
	"jsonb": mapping.JSON,
}

// pgFamily is the family of a type name as columnTypes returns it (0:
// none the mapping reads).
func pgFamily(typ string) mapping.TypeFamily {
	if strings.HasSuffix(typ, "/string") {
		return mapping.Text
	}
	return pgFamilies[typ]
}

// pgTypeFor is the type a fix suggests for a column of family f.
func pgTypeFor(f mapping.TypeFamily) string {
	switch f {
	case mapping.Integer:
		return "bigint"
	case mapping.Timestamp:
		return "timestamp(0)"
	case mapping.Boolean:
		return "boolean"
	case mapping.JSON:
		return "jsonb"
	}
	return "text"
}

// problems lists what is wrong with one table, in a fixed order.
func (t tableState) problems(cfg Config, sc schemaState) []Problem {
	disp, q := cfg.displayName(t.name), cfg.qualified(t.name)
	p := func(kind, detail, fix string) Problem {
		return Problem{Table: disp, Kind: kind, Detail: detail, Fix: fix}
	}
	if !t.exists {
		return []Problem{p("missing", "not found",
			fmt.Sprintf("create the table, or set source.schema / source.tables.%s to the table's real name", t.key))}
	}
	var out []Problem
	if !t.canSelect {
		out = append(out, p("no_select", fmt.Sprintf("role %s cannot SELECT from it", sc.user),
			fmt.Sprintf("GRANT SELECT ON %s TO %s;", q, quoteIdent(sc.user))))
	}
	if sc.pubExists && !t.published {
		out = append(out, p("not_published", fmt.Sprintf("not in publication %s: its changes do not reach deskhook "+
			"(a table rebuilt by a migration leaves the publication)", cfg.Publication),
			fmt.Sprintf("run deskhook setup, or: ALTER PUBLICATION %s ADD TABLE %s;", quoteIdent(cfg.Publication), q)))
	}
	if t.need.OldRow && t.ident != "f" {
		out = append(out, p("replica_identity", fmt.Sprintf("REPLICA IDENTITY %s: updates would lack the old row, "+
			"so changed fields cannot be told apart", identityName(t.ident)),
			fmt.Sprintf("run deskhook setup, or: ALTER TABLE %s REPLICA IDENTITY FULL;", q)))
	}
	for _, c := range t.need.Columns {
		typ, ok := t.cols[c.Name]
		switch {
		case !ok:
			out = append(out, p("missing_column:"+c.Name, fmt.Sprintf("lacks column %s, which deskhook reads for %s "+
				"(renamed or dropped?)", c.Name, c.Why), fmt.Sprintf("restore the column (ALTER TABLE %s RENAME COLUMN "+
				"<its new name> TO %s;), or rename it back in the helpdesk's migration", q, quoteIdent(c.Name))))
		case !c.Accepts(pgFamily(typ)):
			out = append(out, p("column_type:"+c.Name, fmt.Sprintf("column %s is of type %s; deskhook reads it as %s "+
				"(for %s)", c.Name, strings.TrimSuffix(typ, "/string"), c.FamiliesString(), c.Why),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;", q, quoteIdent(c.Name),
					pgTypeFor(c.Families[0]), quoteIdent(c.Name), pgTypeFor(c.Families[0]))))
		}
	}
	return out
}

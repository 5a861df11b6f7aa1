package binlog

// Verifying the helpdesk schema against what deskhook reads: every
// configured table present and readable, every column the mapping reads
// (mapping.Needs) present with a type it can read, and the server still
// logging what the reader needs (a SET GLOBAL binlog_row_image = MINIMAL
// would silently take the old rows away). `deskhook check` reports it; the
// daemon runs it again while it streams (at start, when the stream shows
// DDL on a watched table, and every source.verify_interval).

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/deskhook/deskhook/mapping"
)

// Problem is one way the source differs from what deskhook reads. Its Kind
// is one of missing, no_select, missing_column:NAME, column_type:NAME, or,
// for the server as a whole (Table ""), the name of a binlog setting
// deskhook needs (log_bin, binlog_format, binlog_row_image,
// binlog_row_metadata, gtid_mode, enforce_gtid_consistency); Table is
// database.table.
type Problem = mapping.Problem

// Verify compares the server's settings and the helpdesk schema with what
// deskhook reads and returns every difference, in a fixed order. It changes
// nothing. An error means it could not look (the connection failed); the
// problems are then unknown, not absent.
func Verify(ctx context.Context, cfg Config) ([]Problem, error) {
	cfg.SetDefaults()
	db, mc, err := openSQL(cfg.DSN)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("binlog: verifying the source: %w", err)
	}
	var out []Problem
	for _, r := range info.requirements() {
		if !r.ok {
			out = append(out, Problem{Kind: r.name, Detail: fmt.Sprintf("the server has %s = %s; deskhook needs %s",
				r.name, r.got, r.want), Fix: fmt.Sprintf("add `%s` under [mysqld] in the server's my.cnf and restart it",
				r.cnf)})
		}
	}
	tables, err := inspect(ctx, db, cfg, mc.DBName)
	if err != nil {
		return nil, fmt.Errorf("binlog: verifying the source: %w", err)
	}
	for _, t := range tables {
		out = append(out, t.problems()...)
	}
	return out, nil
}

// tableState is one configured table as the server shows it.
type tableState struct {
	key, name, db string
	user          string // CURRENT_USER(), for the GRANT
	need          mapping.TableNeed
	exists        bool
	canSelect     bool
	selectErr     error             // a SELECT that failed otherwise
	cols          map[string]string // column name → DATA_TYPE
}

// inspect reads every configured table: its columns from information_schema
// and whether the account may read it, by trying.
func inspect(ctx context.Context, db *sql.DB, cfg Config, dbName string) ([]tableState, error) {
	var user string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
		return nil, err
	}
	keys := cfg.Tables.Keys()
	var out []tableState
	for i, name := range cfg.Tables.List() {
		t := tableState{key: keys[i], name: name, db: dbName, user: user, need: mapping.NeedsOf(keys[i]),
			cols: map[string]string{}}
		_, err := db.ExecContext(ctx, "SELECT 1 FROM "+quoteIdent(dbName)+"."+quoteIdent(name)+" LIMIT 0")
		switch code := serverErrorCode(err); {
		case err == nil:
			t.exists, t.canSelect = true, true
		case code == 1146:
		case code == erTableAccessDenied || code == erDBAccessDenied:
			t.exists = true // or not: the server does not tell an account that may not read it
		default:
			t.exists, t.selectErr = true, err
		}
		rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, dbName, name)
		if err != nil {
			return nil, fmt.Errorf("columns of %s.%s: %w", dbName, name, err)
		}
		for rows.Next() {
			var c, typ string
			if err := rows.Scan(&c, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			t.cols[c] = strings.ToLower(typ)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// mysqlFamilies maps MySQL's and MariaDB's DATA_TYPE names to the mapping's
// type families, as the reader renders them: BLOBs are text (Faveo keeps
// titles and bodies in LONGBLOB), MariaDB's JSON is a LONGTEXT.
var mysqlFamilies = map[string]mapping.TypeFamily{
	"tinyint": mapping.Integer, "smallint": mapping.Integer, "mediumint": mapping.Integer, "int": mapping.Integer,
	"bigint": mapping.Integer,
	"char":   mapping.Text, "varchar": mapping.Text, "tinytext": mapping.Text, "text": mapping.Text,
	"mediumtext": mapping.Text, "longtext": mapping.Text, "tinyblob": mapping.Text, "blob": mapping.Text,
	"mediumblob": mapping.Text, "longblob": mapping.Text, "binary": mapping.Text, "varbinary": mapping.Text,
	"enum": mapping.Text, "set": mapping.Text,
	"date": mapping.Timestamp, "datetime": mapping.Timestamp, "timestamp": mapping.Timestamp,
	"json": mapping.JSON,
}

// mysqlTypeFor is the type a fix suggests for a column of family f.
func mysqlTypeFor(f mapping.TypeFamily) string {
	switch f {
	case mapping.Integer:
		return "BIGINT"
	case mapping.Timestamp:
		return "DATETIME"
	case mapping.Boolean:
		return "TINYINT(1)"
	case mapping.JSON:
		return "JSON"
	}
	return "TEXT"
}

// problems lists what is wrong with one table, in a fixed order.
func (t tableState) problems() []Problem {
	disp, q := t.db+"."+t.name, quoteIdent(t.db)+"."+quoteIdent(t.name)
	p := func(kind, detail, fix string) Problem {
		return Problem{Table: disp, Kind: kind, Detail: detail, Fix: fix}
	}
	if !t.exists {
		return []Problem{p("missing", "not found",
			fmt.Sprintf("create the table, or set source.tables.%s to the table's real name (in database %s)", t.key, t.db))}
	}
	var out []Problem
	switch {
	case t.selectErr != nil:
		out = append(out, p("no_select", "SELECT from it failed: "+t.selectErr.Error(), ""))
	case !t.canSelect:
		out = append(out, p("no_select", fmt.Sprintf("account %s cannot SELECT from it", t.user),
			fmt.Sprintf("GRANT SELECT ON %s.* TO %s;", quoteIdent(t.db), accountSQL(t.user))))
		return out // information_schema shows it no columns either
	}
	for _, c := range t.need.Columns {
		typ, ok := t.cols[c.Name]
		switch {
		case !ok:
			out = append(out, p("missing_column:"+c.Name, fmt.Sprintf("lacks column %s, which deskhook reads for %s "+
				"(renamed or dropped?)", c.Name, c.Why), fmt.Sprintf("restore the column (ALTER TABLE %s RENAME COLUMN "+
				"<its new name> TO %s;), or rename it back in the helpdesk's migration", q, quoteIdent(c.Name))))
		case !c.Accepts(mysqlFamilies[typ]):
			out = append(out, p("column_type:"+c.Name, fmt.Sprintf("column %s is of type %s; deskhook reads it as %s "+
				"(for %s)", c.Name, typ, c.FamiliesString(), c.Why),
				fmt.Sprintf("change it back to a %s type (ALTER TABLE %s MODIFY COLUMN %s %s ...;, keeping its "+
					"NULL and DEFAULT)", c.Families[0], q, quoteIdent(c.Name), mysqlTypeFor(c.Families[0]))))
		}
	}
	return out
}

package binlog

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/deskhook/deskhook/change"
)

// table is a watched table as of its latest table map.
type table struct {
	table *change.Table
	cols  []column
	shape string // what the table map said, to notice a change
}

// tableCache turns table maps into tables. The server writes a table map
// before the rows of each statement, with the table's definition as of
// that statement: after DDL the next table map carries the new columns, a
// new *change.Table is made, and batches already handed over keep theirs.
type tableCache struct {
	log     *slog.Logger
	db      string
	watched map[string]bool
	tables  map[string]*table // by table name, in db
	// onChange is told of a watched table met anew: its first table map,
	// a changed definition, DDL naming it (nil: nobody).
	onChange func(table string)
}

func newTableCache(log *slog.Logger, db string, names []string) *tableCache {
	c := &tableCache{log: log, db: db, watched: map[string]bool{}, tables: map[string]*table{}}
	for _, n := range names {
		c.watched[n] = true
	}
	return c
}

// watches says whether rows of schema.name are handed over.
func (c *tableCache) watches(schema, name []byte) bool {
	return string(schema) == c.db && c.watched[string(name)]
}

// get returns the watched table a table map describes.
func (c *tableCache) get(tm *replication.TableMapEvent) (*table, error) {
	name := string(tm.Table)
	shape := tableShape(tm)
	if t := c.tables[name]; t != nil && t.shape == shape {
		return t, nil
	}
	n := int(tm.ColumnCount)
	if len(tm.ColumnName) != n {
		return nil, &configError{msg: fmt.Sprintf("the table map of %s.%s names no columns: the server logs "+
			"binlog_row_metadata=MINIMAL or NO_LOG. Add `binlog_row_metadata = FULL` under [mysqld] in my.cnf "+
			"(or SET GLOBAL binlog_row_metadata = FULL) and restart deskhook; changes logged without the names "+
			"cannot be read, accept them as a gap with `deskhook setup --accept-gap`", c.db, name)}
	}
	unsigned := tm.UnsignedMap()
	enums, sets := tm.EnumStrValueMap(), tm.SetStrValueMap()
	collations, enumSetCollations := tm.CollationMap(), tm.EnumSetCollationMap()
	key := map[int]bool{}
	for _, k := range tm.PrimaryKey {
		key[int(k)] = true
	}
	cols := make([]column, n)
	tcols := make([]change.Column, n)
	for i := range cols {
		col := column{name: string(tm.ColumnName[i]), typ: tm.ColumnType[i], meta: tm.ColumnMeta[i],
			unsigned: unsigned[i], key: key[i]}
		if col.typ == mysql.MYSQL_TYPE_STRING {
			if rt := byte(col.meta >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
				col.typ = rt
			}
		}
		switch col.typ {
		case mysql.MYSQL_TYPE_ENUM:
			col.labels = enums[i]
			col.charset = charsetOf(enumSetCollations[i])
		case mysql.MYSQL_TYPE_SET:
			col.labels = sets[i]
			col.charset = charsetOf(enumSetCollations[i])
		default:
			if coll, ok := collations[i]; ok {
				col.charset = charsetOf(coll)
			}
		}
		if (col.typ == mysql.MYSQL_TYPE_ENUM || col.typ == mysql.MYSQL_TYPE_SET) && col.labels == nil {
			return nil, &configError{msg: fmt.Sprintf("the table map of %s.%s gives no labels for %s column %s: "+
				"the server logs binlog_row_metadata=MINIMAL; add `binlog_row_metadata = FULL` under [mysqld] in my.cnf",
				c.db, name, col.typeName(), col.name)}
		}
		if col.charset == charsetLatin1 {
			for j, l := range col.labels {
				col.labels[j] = latin1ToUTF8(l)
			}
		}
		cols[i] = col
		tcols[i] = change.Column{Name: col.name, Type: col.typeName(), Key: col.key}
	}
	t := &table{table: change.NewTable(c.db, name, tcols), cols: cols, shape: shape}
	if old := c.tables[name]; old != nil {
		c.log.Info("table definition changed; reading its rows with the new columns from now on",
			"table", c.db+"."+name, "columns_before", columnNames(old.cols), "columns_now", columnNames(cols))
	}
	c.tables[name] = t
	c.changed(name)
	return t, nil
}

// changed tells onChange of table.
func (c *tableCache) changed(table string) {
	if c.onChange != nil {
		c.onChange(table)
	}
}

// last returns the latest table seen for name, or a table without columns.
func (c *tableCache) last(name string) *change.Table {
	if t := c.tables[name]; t != nil {
		return t.table
	}
	return change.NewTable(c.db, name, nil)
}

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ",")
}

// tableShape is everything of a table map that decoding depends on.
func tableShape(tm *replication.TableMapEvent) string {
	var b strings.Builder
	b.Write(tm.ColumnType)
	for _, m := range tm.ColumnMeta {
		b.WriteByte(byte(m))
		b.WriteByte(byte(m >> 8))
	}
	b.WriteByte(0)
	b.Write(tm.SignednessBitmap)
	for _, n := range tm.ColumnName {
		b.WriteByte(0)
		b.Write(n)
	}
	for _, vs := range [][][][]byte{tm.EnumStrValue, tm.SetStrValue} {
		for _, v := range vs {
			b.WriteByte(1)
			for _, s := range v {
				b.WriteByte(2)
				b.Write(s)
			}
		}
	}
	for _, cs := range [][]uint64{tm.DefaultCharset, tm.ColumnCharset, tm.EnumSetDefaultCharset, tm.EnumSetColumnCharset, tm.PrimaryKey} {
		b.WriteByte(3)
		for _, x := range cs {
			fmt.Fprintf(&b, "%d,", x)
		}
	}
	return b.String()
}

package change

import (
	"strconv"
	"strings"
	"time"
)

// Table describes a source table as of the change that refers to it. A source
// creates a new *Table when the table's definition changes (a column added,
// a table renamed), so a Row always matches the Table it points to.
type Table struct {
	Schema  string
	Name    string
	Columns []Column
	index   map[string]int
}

// Column is one column of a Table.
type Column struct {
	Name string
	// Type is the source's name for the column type ("int8", "timestamp",
	// "text", ...). Informational: Value.Kind says how the value was decoded.
	Type string
	// Key marks columns of the source's replica identity / primary key.
	Key bool
}

// NewTable builds a Table and its column index.
func NewTable(schema, name string, cols []Column) *Table {
	t := &Table{Schema: schema, Name: name, Columns: cols, index: make(map[string]int, len(cols))}
	for i, c := range cols {
		t.index[c.Name] = i
	}
	return t
}

// Col returns the index of the named column, or -1.
func (t *Table) Col(name string) int {
	if i, ok := t.index[name]; ok {
		return i
	}
	return -1
}

// Kind says how a Value was decoded.
type Kind uint8

const (
	// KindNull is SQL NULL.
	KindNull Kind = iota
	// KindUnchanged marks a value the source did not send and could not
	// recover (PostgreSQL: an unchanged TOASTed column when the old row is
	// not available). The consumer keeps whatever it knew before.
	KindUnchanged
	// KindText is any value kept as text only (text, varchar, json, ...).
	KindText
	// KindInt is an integer; Int holds it.
	KindInt
	// KindFloat is a floating point or decimal number; Float holds it.
	KindFloat
	// KindBool is a boolean; Int holds 0 or 1.
	KindBool
	// KindTime is a date or timestamp; Time holds it (UTC for values
	// without a zone, so the wall clock reads as the source printed it).
	KindTime
	// KindBytes is binary data; Text holds the source's text form.
	KindBytes
)

// Value is one column value. Text is always the text form the source printed
// (empty for NULL and Unchanged), so a renderer can reproduce it exactly; the
// typed fields are set according to Kind.
type Value struct {
	Kind  Kind
	Text  string
	Int   int64
	Float float64
	Time  time.Time
}

// IsNull reports whether v is SQL NULL.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// Row is a table row: one Value per column of Table, in column order.
type Row struct {
	Table  *Table
	Values []Value
}

// Get returns the named column's value; ok is false when the table has no
// such column.
func (r *Row) Get(col string) (v Value, ok bool) {
	if r == nil || r.Table == nil {
		return Value{}, false
	}
	i := r.Table.Col(col)
	if i < 0 || i >= len(r.Values) {
		return Value{}, false
	}
	return r.Values[i], true
}

// Int returns the named column as an integer: ok is false when the column is
// missing, NULL or not a number.
func (r *Row) Int(col string) (n int64, ok bool) {
	v, found := r.Get(col)
	if !found {
		return 0, false
	}
	switch v.Kind {
	case KindInt, KindBool:
		return v.Int, true
	case KindText:
		n, err := strconv.ParseInt(v.Text, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Text returns the named column's text form ("" when missing or NULL).
func (r *Row) Text(col string) string {
	v, _ := r.Get(col)
	return v.Text
}

// TextRow builds the row of a text-protocol query result (a lookup by
// primary key, as both sources do for rows they have never seen): a nil
// column is NULL, every other one is value(i, text). The values' text
// shares one string per row, one allocation rather than one per column, as
// the stream's values share one per message.
func TextRow(t *Table, raw [][]byte, value func(i int, text string) Value) *Row {
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
	vals := make([]Value, len(raw))
	off := 0
	for i, b := range raw {
		if b == nil {
			vals[i] = Value{Kind: KindNull}
			continue
		}
		vals[i] = value(i, all[off:off+len(b)])
		off += len(b)
	}
	return &Row{Table: t, Values: vals}
}

package mapping

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deskhook/deskhook/change"
)

// Aggregate is a read a Source answers in one statement, and so from one
// snapshot: for each key, counts and extremes over the rows of a few tables
// that belong to it, and rows found by what those give (the row whose id
// is a minimum, say). It is how the mapping asks for what it cannot keep
// from the stream (a ticket's thread count, first thread, collaborators)
// without the readers knowing Faveo's rules: those are written here as
// Aggregates (facts.go), and a SQL source answers them with the statement
// Aggregate.SQL builds in its dialect.
type Aggregate struct {
	// Keys are the keys asked for, distinct.
	Keys []Key
	// Parts are aggregated for each key.
	Parts []Part
	// Fetch reads rows by the ids parts give.
	Fetch []Fetch
}

// Key is one key, with the bound its parts' Bound columns must not exceed
// (0: none).
type Key struct {
	Value, Bound int64
}

// Part aggregates, for each key, the rows of Table whose Group column
// equals the key and, when the key has a bound and Bound names a column,
// whose Bound column is at most the bound. With Join, each row of Table is
// joined to the row of Join.Table whose id its Join.Ref column holds (rows
// without one are left out), and Group, Bound and the conditions may name
// that table's columns.
type Part struct {
	Table  string
	Join   *Join
	Group  Col
	Bound  Col
	Values []Value
}

// Join is an inner join on the joined table's id.
type Join struct {
	Table string
	Ref   string // the column of the part's table holding the joined row's id
}

// Col names a column of a part's table, or of its joined table.
type Col struct {
	Name   string
	Joined bool
}

// Func is an aggregate function.
type Func uint8

// The aggregates a Source computes; each is 0 over no rows.
const (
	Count Func = iota + 1 // rows
	Min                   // the least value of Col
	Max                   // the greatest value of Col
)

// Value is one aggregate over the rows of a part for which every condition
// of Where holds. Its result is an integer.
type Value struct {
	Func  Func
	Col   Col
	Where []Cond
}

// Cond tests a column.
type Cond struct {
	Col  Col
	Test Test
}

// Test is what a Cond tests.
type Test uint8

// The tests.
const (
	IsZero   Test = iota + 1 // NULL or 0 (false)
	NotEmpty                 // neither NULL nor the empty string
)

// Fetch reads the row of Table whose id is a part's value (none when the
// value is 0 or no row has it): its Columns, or all of them when nil (for
// one fetch of an Aggregate at most, so that its columns can be told from
// the others').
type Fetch struct {
	Table   string
	Part    int // index in Parts
	Value   int // index in that part's Values
	Columns []string
}

// Key names the shape of the rows f reads: its table, and its columns
// when not all. A Source that keeps a table's shape between reads keeps
// it under this key, so that a fetch of some columns and the whole rows do
// not replace each other's.
func (f Fetch) Key() string {
	if f.Columns == nil {
		return f.Table
	}
	return f.Table + "\x00" + strings.Join(f.Columns, "\x00")
}

// AggregateRow is the answer for one key.
type AggregateRow struct {
	// Values holds each part's values, in order (0 over no rows).
	Values [][]int64
	// Rows holds each fetch's row, in order (nil: none found).
	Rows []*change.Row
}

// SQLDialect is what Aggregate.SQL needs to know of a SQL database.
type SQLDialect struct {
	// Table quotes (and qualifies) a table name.
	Table func(name string) string
	// Ident quotes a column name.
	Ident func(name string) string
	// IsZero is the SQL testing expression e for NULL or 0.
	IsZero func(e string) string
}

// SQL returns the statement answering a in dialect d, reading the keys
// from keys: a SELECT (or a table expression) giving each key as columns
// k and b, the key and its bound. Its result has one row per key: the key,
// each part's values in order (integers, 0 over no rows), then for each
// fetch 1 or 0 (found or not) and the fetched row's columns (all the
// table's, in its order, when Columns is nil). The aggregates are written
// with CASE, which every SQL database has, rather than FILTER.
func (a Aggregate) SQL(d SQLDialect, keys string) string {
	var b strings.Builder
	b.WriteString("WITH q AS (" + keys + ")")
	for i, p := range a.Parts {
		col := func(c Col) string {
			if c.Joined {
				return "j." + d.Ident(c.Name)
			}
			return "t." + d.Ident(c.Name)
		}
		var vals []string
		for j, v := range p.Values {
			cond := make([]string, len(v.Where))
			for k, c := range v.Where {
				switch c.Test {
				case IsZero:
					cond[k] = d.IsZero(col(c.Col))
				case NotEmpty:
					cond[k] = col(c.Col) + " <> ''"
				}
			}
			arg := "1"
			if v.Func != Count {
				arg = col(v.Col)
			}
			if len(cond) > 0 {
				arg = "CASE WHEN " + strings.Join(cond, " AND ") + " THEN " + arg + " END"
			}
			fn := map[Func]string{Count: "count", Min: "min", Max: "max"}[v.Func]
			vals = append(vals, fn+"("+arg+") AS v"+strconv.Itoa(j))
		}
		from := d.Table(p.Table) + " t"
		where := col(p.Group) + " = q.k"
		if p.Join != nil {
			from += ", " + d.Table(p.Join.Table) + " j"
			where = "j.id = t." + d.Ident(p.Join.Ref) + " AND " + where
		}
		if p.Bound.Name != "" {
			where += " AND (q.b = 0 OR " + col(p.Bound) + " <= q.b)"
		}
		b.WriteString(",\np" + strconv.Itoa(i) + " AS (SELECT q.k, " + strings.Join(vals, ", ") + "\n  FROM q, " + from +
			"\n  WHERE " + where + "\n  GROUP BY q.k)")
	}
	b.WriteString("\nSELECT q.k")
	for i, p := range a.Parts {
		for j := range p.Values {
			b.WriteString(", COALESCE(p" + strconv.Itoa(i) + ".v" + strconv.Itoa(j) + ", 0)")
		}
	}
	for i, f := range a.Fetch {
		fi := "f" + strconv.Itoa(i)
		b.WriteString(", CASE WHEN " + fi + ".id IS NULL THEN 0 ELSE 1 END")
		if f.Columns == nil {
			b.WriteString(", " + fi + ".*")
		}
		for _, c := range f.Columns {
			b.WriteString(", " + fi + "." + d.Ident(c))
		}
	}
	b.WriteString("\nFROM q")
	for i := range a.Parts {
		p := "p" + strconv.Itoa(i)
		b.WriteString("\nLEFT JOIN " + p + " ON " + p + ".k = q.k")
	}
	for i, f := range a.Fetch {
		fi := "f" + strconv.Itoa(i)
		b.WriteString("\nLEFT JOIN " + d.Table(f.Table) + " " + fi + " ON " + fi + ".id = p" + strconv.Itoa(f.Part) +
			".v" + strconv.Itoa(f.Value))
	}
	return b.String()
}

// Tables lists the tables a reads, each once, sorted (for messages).
func (a Aggregate) Tables() []string {
	var names []string
	for _, p := range a.Parts {
		names = append(names, p.Table)
		if p.Join != nil {
			names = append(names, p.Join.Table)
		}
	}
	for _, f := range a.Fetch {
		names = append(names, f.Table)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Width is the number of columns of SQL's result before the fetched rows'
// columns: the key and every part's values.
func (a Aggregate) Width() int {
	n := 1
	for _, p := range a.Parts {
		n += len(p.Values)
	}
	return n
}

// DecodeRow turns one result row of SQL — each column's text, nil for
// NULL, spans from FetchSpans — into its key and AggregateRow; fetched
// decodes a found fetch's columns into a row, as the source decodes its
// rows.
func (a Aggregate) DecodeRow(raw [][]byte, spans [][2]int, fetched func(fetch int, cols [][]byte) *change.Row) (int64, AggregateRow, error) {
	var err error
	num := func(i int) int64 {
		n, perr := strconv.ParseInt(string(raw[i]), 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("column %d: %q is not an integer", i+1, raw[i])
		}
		return n
	}
	r := AggregateRow{Values: make([][]int64, len(a.Parts)), Rows: make([]*change.Row, len(a.Fetch))}
	col := 1
	for i, p := range a.Parts {
		r.Values[i] = make([]int64, len(p.Values))
		for j := range p.Values {
			r.Values[i][j] = num(col)
			col++
		}
	}
	for i, sp := range spans {
		if num(sp[0]-1) != 0 {
			r.Rows[i] = fetched(i, raw[sp[0]:sp[1]])
		}
	}
	key := num(0)
	return key, r, err
}

// FetchSpans says where each fetch's row lies in a result row of SQL with
// total columns: its found flag at span[0]-1, its columns from span[0] up
// to span[1]. ok is false when total is too small for the fetches.
func (a Aggregate) FetchSpans(total int) (spans [][2]int, ok bool) {
	fixed := a.Width()
	for _, f := range a.Fetch {
		fixed++
		if f.Columns != nil {
			fixed += len(f.Columns)
		}
	}
	rest := total - fixed // the columns of the fetch of all columns
	if rest < 0 {
		return nil, false
	}
	at := a.Width()
	for _, f := range a.Fetch {
		n := len(f.Columns)
		if f.Columns == nil {
			n = rest
		}
		spans = append(spans, [2]int{at + 1, at + 1 + n})
		at += 1 + n
	}
	return spans, at == total
}

package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/change"
)

const null = "\x00NULL"

// text is a value as the comparison sees it (NULL apart from "").
func text(v change.Value) string {
	if v.Kind == change.KindNull {
		return null
	}
	return v.Text
}

// rowTexts is a row's values by column name.
func rowTexts(r *change.Row) map[string]string {
	out := make(map[string]string, len(r.Values))
	for i, v := range r.Values {
		out[r.Table.Columns[i].Name] = text(v)
	}
	return out
}

// replica is the tables as the stream's changes build them, by id.
type replica map[string]map[string]map[string]string

// apply applies the batches in order, checking that each update's and
// delete's old row is the row as the stream left it (a transaction lost,
// repeated or out of order breaks that chain), and that positions grow.
func (rp replica) apply(t *testing.T, bs []*change.Batch) {
	t.Helper()
	var last change.Position
	lastDone := true
	for _, b := range bs {
		switch {
		case b.Pos < last, b.Pos == last && lastDone:
			t.Fatalf("batch at %d (seq %d) after %d: positions must grow", b.Pos, b.Seq, last)
		}
		last, lastDone = b.Pos, b.Last
		for _, c := range b.Changes {
			tbl := rp[c.Table.Name]
			if tbl == nil {
				tbl = map[string]map[string]string{}
				rp[c.Table.Name] = tbl
			}
			switch c.Op {
			case change.Insert:
				row := rowTexts(c.New)
				if _, dup := tbl[row["id"]]; dup {
					t.Fatalf("%s: insert of id %s twice (at %d)", c.Table.Name, row["id"], b.Pos)
				}
				tbl[row["id"]] = row
			case change.Update, change.Delete:
				old := rowTexts(c.Old)
				if have, ok := tbl[old["id"]]; ok && !sameRow(have, old) {
					t.Fatalf("%s id %s at %d: old row %v, the stream left %v", c.Table.Name, old["id"], b.Pos, old, have)
				}
				if c.Op == change.Delete {
					delete(tbl, old["id"])
				} else {
					row := rowTexts(c.New)
					tbl[row["id"]] = row
				}
			case change.Truncate:
				clear(tbl)
			}
		}
	}
}

func sameRow(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// selectAll reads every row of table as text, through go-sql-driver's text
// protocol (what PDO gets), in a session with time zone zone ("" the
// server's).
func selectAll(t *testing.T, dsn, table, zone string) map[string]map[string]string {
	t.Helper()
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	if err := mc.Apply(mysql.Charset("utf8mb4", "utf8mb4_general_ci")); err != nil {
		t.Fatal(err)
	}
	if zone != "" {
		mc.Params["time_zone"] = "'" + zone + "'"
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), "SELECT * FROM `"+table+"`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := map[string]map[string]string{}
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		dst := make([]any, len(cols))
		for i := range raw {
			dst[i] = &raw[i]
		}
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			if raw[i] == nil {
				row[c] = null
			} else {
				row[c] = string(raw[i])
			}
		}
		out[row["id"]] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTable checks that the stream's rows equal the SELECT's, column
// by column, and says how many values it compared.
func compareTable(t *testing.T, table string, streamed, selected map[string]map[string]string) int {
	t.Helper()
	n := 0
	var ids []string
	for id := range selected {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		want := selected[id]
		got, ok := streamed[id]
		if !ok {
			t.Errorf("%s id %s: in the table, never streamed", table, id)
			continue
		}
		for col, w := range want {
			n++
			if g, ok := got[col]; !ok || g != w {
				t.Errorf("%s id %s column %s: stream %s, SELECT %s", table, id, col, show(g, ok), show(w, true))
			}
		}
	}
	for id := range streamed {
		if _, ok := selected[id]; !ok {
			t.Errorf("%s id %s: streamed, not in the table", table, id)
		}
	}
	return n
}

func show(s string, ok bool) string {
	switch {
	case !ok:
		return "(no such column)"
	case s == null:
		return "NULL"
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(s, "?"))
}

package mapping

import (
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

// TestPackedRowRendersLikeMembers: a packed row renders exactly the members
// appendMembers writes, for every kind of value (escapes, control
// characters, invalid UTF-8, NULL, unchanged), rows shorter than their
// table, and reads single values back.
func TestPackedRowRendersLikeMembers(t *testing.T) {
	at := time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)
	tests := []struct {
		name string
		row  *change.Row
	}{
		{"ticket", ticketRow(7, 5, 1, 2, 3)},
		{"escapes", mkRow(threadsT, 1, 2, nil, "a\"b\\c", "tab\there\nnl\x01", "\u2028", "bad \xff utf8 ünï")},
		{"unchanged", mkRow(threadsT, 1, 2, unchanged, nil, "", 0, unchanged)},
		{"short row", &change.Row{Table: threadsT, Values: []change.Value{{Kind: change.KindInt, Int: 9}}}},
		{"time", mkRow(ticketsT, 1, "T", 1, 1, nil, 1, nil, 1, at, at)},
		{"empty", &change.Row{Table: threadsT}},
	}
	var sh shapes = shapes{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := appendMembers(nil, tc.row, nil)
			p, _ := sh.pack(tc.row, nil)
			j := &jsonBuf{}
			p.appendTo(j)
			if string(j.b) != string(want) {
				t.Errorf("packed renders\n%s\nwant\n%s", j.b, want)
			}
			// In an object with members before it: the comma.
			j = &jsonBuf{}
			j.openObject()
			j.field("x", "1")
			p.appendTo(j)
			j.closeObject()
			if len(want) > 0 && string(j.b) != `{"x":"1",`+string(want)+`}` {
				t.Errorf("after a member: %s", j.b)
			}
			for i, col := range tc.row.Table.Columns {
				got := p.value(col.Name)
				if i >= len(tc.row.Values) {
					if got != nil {
						t.Errorf("%s: value %q of a column the row lacks", col.Name, got)
					}
					continue
				}
				if w := appendScalar(nil, tc.row.Values[i], col.Type); string(got) != string(w) {
					t.Errorf("%s: value %q, want %q", col.Name, got, w)
				}
			}
		})
	}
	var unset packedRow
	j := &jsonBuf{}
	unset.appendTo(j)
	if len(j.b) != 0 || unset.value("id") != nil || unset.known() {
		t.Errorf("unset row: %q", j.b)
	}
}
